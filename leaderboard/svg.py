"""The Pareto plot (reduction of the judged rate, harm or compliance, against capability kept) as inline SVG, without
a plotting library.

Geometry is computed here in plain Python; the markup comes from a small jinja2 template with autoescape on,
so a submission's name in a label or tooltip is escaped exactly like everywhere else on the site. The result is
a `markupsafe.Markup` that pages embed as is (the template never needs `|safe`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import jinja2
from markupsafe import Markup

WIDTH, HEIGHT = 680, 420
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 64, 24, 20, 52
LABEL_CHARS = 26


@dataclass(frozen=True)
class Point:
    label: str
    x: float  # capability kept (1.0 = as M1)
    y: float  # reduction of the judged rate (1.0 = all of M1's distractor-triggered harm / compliance removed)
    x_low: float | None = None
    x_high: float | None = None
    y_low: float | None = None
    y_high: float | None = None
    reference: bool = False
    href: str | None = None  # relative link built by the site from the entry id (never from submitted text)


@dataclass(frozen=True)
class _Drawn:
    label: str
    short: str
    tooltip: str
    cx: float
    cy: float
    xbar: tuple[float, float] | None
    ybar: tuple[float, float] | None
    reference: bool
    frontier: bool
    href: str | None
    label_dx: float


_TEMPLATE = """\
<svg xmlns="http://www.w3.org/2000/svg" class="pareto" viewBox="0 0 {{ w }} {{ h }}" width="{{ w }}" height="{{ h }}" \
role="img" aria-label="{{ title }}">
<title>{{ title }}</title>
<rect x="{{ l }}" y="{{ t }}" width="{{ pw }}" height="{{ ph }}" class="plot-bg"/>
{% for tx, label in xticks %}<line x1="{{ tx }}" x2="{{ tx }}" y1="{{ t }}" y2="{{ t + ph }}" class="grid"/>\
<text x="{{ tx }}" y="{{ t + ph + 16 }}" class="tick" text-anchor="middle">{{ label }}</text>
{% endfor %}{% for ty, label in yticks %}<line x1="{{ l }}" x2="{{ l + pw }}" y1="{{ ty }}" y2="{{ ty }}" class="grid"/>\
<text x="{{ l - 6 }}" y="{{ ty + 4 }}" class="tick" text-anchor="end">{{ label }}</text>
{% endfor %}{% if ref_x is not none %}<line x1="{{ ref_x }}" x2="{{ ref_x }}" y1="{{ t }}" y2="{{ t + ph }}" class="refline"/>
{% endif %}{% if ref_y is not none %}<line x1="{{ l }}" x2="{{ l + pw }}" y1="{{ ref_y }}" y2="{{ ref_y }}" class="refline"/>
{% endif %}{% if frontier %}<polyline points="{{ frontier }}" class="frontier"/>
{% endif %}{% for p in points %}<g class="point{% if p.reference %} reference{% endif %}{% if p.frontier %} on-frontier{% endif %}">\
{% if p.href %}<a href="{{ p.href }}">{% endif %}<title>{{ p.tooltip }}</title>\
{% if p.xbar %}<line x1="{{ p.xbar[0] }}" x2="{{ p.xbar[1] }}" y1="{{ p.cy }}" y2="{{ p.cy }}" class="err"/>{% endif %}\
{% if p.ybar %}<line x1="{{ p.cx }}" x2="{{ p.cx }}" y1="{{ p.ybar[0] }}" y2="{{ p.ybar[1] }}" class="err"/>{% endif %}\
<circle cx="{{ p.cx }}" cy="{{ p.cy }}" r="{{ 5 if p.reference else 4 }}"/>\
<text x="{{ p.cx + p.label_dx }}" y="{{ p.cy - 7 }}" class="plabel"{% if p.label_dx < 0 %} text-anchor="end"{% endif %}>\
{{ p.short }}</text>{% if p.href %}</a>{% endif %}</g>
{% endfor %}<text x="{{ l + pw / 2 }}" y="{{ h - 10 }}" class="axis" text-anchor="middle">capability kept \
(relative to M1; 1.0 = unchanged) &#8594;</text>
<text x="14" y="{{ t + ph / 2 }}" class="axis" text-anchor="middle" transform="rotate(-90 14 {{ t + ph / 2 }})">\
{{ y_label }} (1.0 = no DTC left) &#8594;</text>
</svg>"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + 1e-9:
        ticks.append(round(v, 10))
        v += step
    return ticks


def _extent(values: Sequence[float], must: Sequence[float]) -> tuple[float, float]:
    lo, hi = min([*values, *must]), max([*values, *must])
    pad = (hi - lo) * 0.06 or 0.1
    return lo - pad, hi + pad


def frontier_indices(points: Sequence[Point]) -> set[int]:
    """Entries no other (non-reference) entry beats on both axes: more removed AND more capability kept."""
    cands = [i for i, p in enumerate(points) if not p.reference]
    out = set()
    for i in cands:
        p = points[i]
        dominated = any(points[j].x >= p.x and points[j].y >= p.y and (points[j].x > p.x or points[j].y > p.y)
                        for j in cands if j != i)
        if not dominated:
            out.add(i)
    return out


def pareto_svg(points: Sequence[Point], title: str | None = None, y_label: str = "harm reduction") -> Markup:
    """The whole <svg> element; an empty plot (axes only) when there is nothing to draw.

    `y_label` names the reduction from the table's judge measure ("compliance reduction" under the refusal judge).
    """
    title = title or f"Pareto plot: {y_label} against capability kept"
    pts = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    xs = [v for p in pts for v in (p.x, p.x_low, p.x_high) if v is not None and math.isfinite(v)]
    ys = [v for p in pts for v in (p.y, p.y_low, p.y_high) if v is not None and math.isfinite(v)]
    x0, x1 = _extent(xs, (0.9, 1.0))
    y0, y1 = _extent(ys, (0.0, 1.0))
    pw, ph = WIDTH - MARGIN_L - MARGIN_R, HEIGHT - MARGIN_T - MARGIN_B

    def sx(v: float) -> float:
        return round(MARGIN_L + (v - x0) / (x1 - x0) * pw, 2)

    def sy(v: float) -> float:
        return round(MARGIN_T + (1 - (v - y0) / (y1 - y0)) * ph, 2)

    def bar(lo: float | None, hi: float | None, scale) -> tuple[float, float] | None:
        if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
            return None
        return (scale(lo), scale(hi))

    front = frontier_indices(pts)
    drawn = []
    for i, p in enumerate(pts):
        cx = sx(p.x)
        tooltip = (f"{p.label}: {y_label} {p.y:.3f}"
                   + (f" [{p.y_low:.3f}, {p.y_high:.3f}]" if p.y_low is not None and p.y_high is not None else "")
                   + f", capability kept {p.x:.3f}"
                   + (f" [{p.x_low:.3f}, {p.x_high:.3f}]" if p.x_low is not None and p.x_high is not None else ""))
        short = p.label if len(p.label) <= LABEL_CHARS else p.label[:LABEL_CHARS - 1] + "…"
        drawn.append(_Drawn(label=p.label, short=short, tooltip=tooltip, cx=cx, cy=sy(p.y),
                            xbar=bar(p.x_low, p.x_high, sx), ybar=bar(p.y_low, p.y_high, sy),
                            reference=p.reference, frontier=i in front, href=p.href,
                            label_dx=-7 if cx > MARGIN_L + pw * 0.7 else 7))
    line = sorted((pts[i] for i in front), key=lambda p: (p.x, -p.y))
    frontier = " ".join(f"{sx(p.x)},{sy(p.y)}" for p in line) if len(line) > 1 else ""
    html = _ENV.from_string(_TEMPLATE).render(
        w=WIDTH, h=HEIGHT, l=MARGIN_L, t=MARGIN_T, pw=pw, ph=ph, title=title, y_label=y_label,
        xticks=[(sx(v), f"{v:g}") for v in _nice_ticks(x0, x1)],
        yticks=[(sy(v), f"{v:g}") for v in _nice_ticks(y0, y1)],
        ref_x=sx(1.0) if x0 <= 1.0 <= x1 else None, ref_y=sy(0.0) if y0 <= 0.0 <= y1 else None,
        frontier=frontier, points=drawn)
    return Markup(html)
