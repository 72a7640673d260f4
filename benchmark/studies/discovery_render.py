"""The files a discovery run leaves behind: heatmap.png, heatmap.html and clusters.json, each written atomically.

- clusters.json: the whole result (cosine matrix included, floats rounded to 6 decimals, keys sorted), so the same
  inputs give the same bytes and a figure can be redrawn without the models;
- heatmap.png: matplotlib (the `discover` extra), through the object-oriented API (no pyplot global state);
- heatmap.html: one self-contained page (inline CSS, the matrix as inline SVG, no scripts). Prompts and pair
  texts come from data files and model outputs, so every one of them goes through jinja2 autoescape; colours
  and coordinates are computed here from numbers only. Large matrices are drawn as block averages (at most
  MAX_SVG_ROWS x MAX_SVG_COLS cells) so the page stays small; cluster boundaries stay exact.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from benchcore.errors import InputError
from benchcore.fileio import atomic_file, write_text_atomic

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from benchmark.studies.discovery import DiscoveryResult, DiscoveryRun

SCHEMA_VERSION = 1
MAX_SVG_ROWS = 100
MAX_SVG_COLS = 200
INSTALL_HINT = "pip install 'organism-bench[discover]'"
FILES = ("clusters.json", "heatmap.png", "heatmap.html")


def require_matplotlib() -> Any:
    """matplotlib, or an InputError that says how to install it (checked before any model is loaded)."""
    try:
        import matplotlib
    except ImportError:
        raise InputError("discover", "matplotlib", f"heatmap.png needs matplotlib: {INSTALL_HINT}") from None
    return matplotlib


def _r(x: Any) -> float | None:
    x = float(x)
    return round(x, 6) if math.isfinite(x) else None


def _parts(obj: "DiscoveryRun | DiscoveryResult") -> tuple["DiscoveryResult", Mapping[str, Any]]:
    result = getattr(obj, "result", obj)
    return result, getattr(obj, "meta", {}) or {}


def _col_label(result: "DiscoveryResult", c: Any) -> str:
    return f"C{c.id}" + ("*" if c.id == result.flagged else "")


# ------------------------------------------------------------------------------------------------ JSON
def to_dict(obj: "DiscoveryRun | DiscoveryResult") -> dict[str, Any]:
    """The result as plain JSON-ready data (no wall times, no paths that vary between identical runs)."""
    result, meta = _parts(obj)
    s = result.cosine
    truth = result.pair_truth
    row_mean = s.mean(axis=1)
    col_mean = s.mean(axis=0)

    def row_cluster(c: Any) -> dict[str, Any]:
        return {"id": c.id, "size": c.size, "mean_cosine": _r(c.mean_cosine),
                "block_means": [_r(x) for x in c.block_means], "members": list(c.members),
                "top_prompts": [{"index": i, "prompt": result.prompt_labels[i], "mean_cosine": _r(row_mean[i])}
                                for i in result.top_members(c)]}

    def col_cluster(c: Any) -> dict[str, Any]:
        return {"id": c.id, "label": _col_label(result, c), "size": c.size, "mean_cosine": _r(c.mean_cosine),
                "block_means": [_r(x) for x in c.block_means], "members": list(c.members),
                "n_contaminated": c.n_contaminated, "purity": None if c.purity is None else _r(c.purity),
                "flagged": c.id == result.flagged,
                "top_pairs": [{"index": j, "id": result.pair_ids[j], "label": result.pair_labels[j],
                               "mean_cosine": _r(col_mean[j]),
                               "contaminated": None if truth is None else truth[j]}
                              for j in result.top_members(c)]}

    f = result.flagged_summary
    return {
        "schema_version": SCHEMA_VERSION,
        "parameters": dict(result.parameters),
        "meta": dict(meta),
        "shape": {"prompts": int(s.shape[0]), "pairs": int(s.shape[1])},
        "flagged": {"cluster": result.flagged, "size": f.size, "mean_cosine": _r(f.mean_cosine),
                    "n_contaminated": f.n_contaminated, "purity": None if f.purity is None else _r(f.purity),
                    "recall": None if result.recall is None else _r(result.recall)},
        "ground_truth": result.truth_known,
        "n_contaminated_in_sample": result.n_contaminated,
        "row_order": list(result.row_order),
        "col_order": list(result.col_order),
        "row_clusters": [row_cluster(c) for c in result.row_summaries],
        "col_clusters": [col_cluster(c) for c in result.col_summaries],
        "prompts": [{"index": i, "prompt": p, "cluster": result.row_clusters[i]}
                    for i, p in enumerate(result.prompt_labels)],
        "pairs": [{"index": j, "id": x, "label": result.pair_labels[j], "cluster": result.col_clusters[j],
                   "contaminated": None if truth is None else truth[j]} for j, x in enumerate(result.pair_ids)],
        "cosine": [[_r(v) for v in row] for row in s],
    }


def clusters_json(obj: "DiscoveryRun | DiscoveryResult") -> str:
    """One top-level key per line, each value compact (the matrix alone is P x D numbers); keys sorted."""
    data = to_dict(obj)

    def dump(v: Any) -> str:
        return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    return "{\n" + ",\n".join(f"{dump(k)}: {dump(data[k])}" for k in sorted(data)) + "\n}\n"


# ------------------------------------------------------------------------------------------------ geometry
def _boundaries(order: tuple[int, ...], clusters: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(cluster id, start, stop) in heatmap positions: flat Ward clusters are contiguous in leaf order."""
    spans: list[tuple[int, int, int]] = []
    for pos, i in enumerate(order):
        c = clusters[i]
        if spans and spans[-1][0] == c:
            spans[-1] = (c, spans[-1][1], pos + 1)
        else:
            spans.append((c, pos, pos + 1))
    return spans


def _scale(s: "np.ndarray") -> float:
    import numpy as np

    m = float(np.abs(s).max()) if s.size else 0.0
    return m if m > 0 else 1.0


# ------------------------------------------------------------------------------------------------ PNG
def write_png(obj: "DiscoveryRun | DiscoveryResult", path: str | Path) -> Path:
    """The ordered cosine matrix with cluster boundaries and cluster labels on both axes."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    result, _ = _parts(obj)
    s = result.cosine[list(result.row_order)][:, list(result.col_order)]
    m = _scale(s)
    fig = Figure(figsize=(12, 7.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(s, cmap="RdBu_r", vmin=-m, vmax=m, aspect="auto", interpolation="nearest")
    rows = _boundaries(result.row_order, result.row_clusters)
    cols = _boundaries(result.col_order, result.col_clusters)
    for _, start, _stop in rows[1:]:
        ax.axhline(start - 0.5, color="black", linewidth=1.0)
    for _, start, _stop in cols[1:]:
        ax.axvline(start - 0.5, color="black", linewidth=1.0)
    by_id = {c.id: c for c in result.col_summaries}
    ax.set_yticks([(a + b - 1) / 2 for _, a, b in rows], [f"R{c}" for c, _, _ in rows])
    col_names = []
    for c, _, _ in cols:
        name = _col_label(result, by_id[c])
        if by_id[c].purity is not None:
            name += f"\np={by_id[c].purity:.2f}"
        col_names.append(name)
    ax.set_xticks([(a + b - 1) / 2 for _, a, b in cols], col_names)
    for tick, (c, _, _) in zip(ax.get_xticklabels(), cols):
        if c == result.flagged:
            tick.set_color("#b2182b")
            tick.set_fontweight("bold")
    ax.set_xlabel(f"preference pairs (Ward order, {s.shape[1]}); * = flagged: highest mean cosine")
    ax.set_ylabel(f"test prompts whose M0 and M1 responses differ ({s.shape[0]})")
    p = result.parameters
    f = result.flagged_summary
    title = f"cos(behavior vector, datapoint vector)  profile={p.get('profile', '?')} layer={p.get('layer', '?')}"
    title += f"\nflagged C{result.flagged}: {f.size} pairs, mean cosine {f.mean_cosine:.3f}"
    if f.purity is not None:
        title += f", purity {f.purity:.2f}"
    if result.recall is not None:
        title += f", recall {result.recall:.2f}"
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label="cosine")
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    return Path(path)


# ------------------------------------------------------------------------------------------------ HTML
_WIDTH, _HEIGHT, _LEFT, _TOP, _BOTTOM = 960, 520, 56, 34, 28

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>organism-bench discover: {{ profile }}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 12px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}.flag{background:#fde8e8}.muted{color:#666}
.txt{max-width:720px;overflow-wrap:anywhere}svg text{font:11px system-ui,sans-serif}
</style></head><body>
<h1>Unsupervised discovery: {{ profile }}, layer {{ layer }}</h1>
<p>Rows: {{ n_rows }} test prompts whose M0 and M1 responses differ; columns: {{ n_cols }} sampled preference
pairs. Cell = cos(behavior vector, datapoint vector); red = aligned with what DPO changed, blue = opposed
(scale &plusmn;{{ scale }}). Ward clusters: R1..R{{ row_spans|length }} (prompts),
C1..C{{ col_rows|length }} (pairs); * marks the flagged cluster (highest mean cosine).</p>
<p><b>Flagged: C{{ flagged.id }}</b>, {{ flagged.size }} pairs, mean cosine {{ flagged.mean }}
{%- if flagged.purity is not none %}, purity {{ flagged.purity }} ({{ flagged.hits }}/{{ flagged.size }} contaminated
by the ground truth){% endif %}
{%- if recall is not none %}, recall {{ recall }} of the {{ n_pos }} contaminated pairs in the sample{% endif %}.</p>
{% if notes %}<ul>{% for n in notes %}<li class="muted">{{ n }}</li>{% endfor %}</ul>{% endif %}
<svg xmlns="http://www.w3.org/2000/svg" width="{{ svg_w }}" height="{{ svg_h }}" role="img"
 aria-label="cosine heatmap in Ward order" shape-rendering="crispEdges">
<svg x="{{ left }}" y="{{ top }}" width="{{ right - left }}" height="{{ bottom - top }}"
 viewBox="0 0 {{ bins_c }} {{ bins_r }}" preserveAspectRatio="none">
{% for c in cells %}<rect x="{{ c[0] }}" y="{{ c[1] }}" width="1" height="1" fill="{{ c[2] }}"/>
{% endfor %}</svg>
{% for b in row_lines %}<line x1="{{ left }}" x2="{{ right }}" y1="{{ b }}" y2="{{ b }}" stroke="#000"/>{% endfor %}
{% for b in col_lines %}<line y1="{{ top }}" y2="{{ bottom }}" x1="{{ b }}" x2="{{ b }}" stroke="#000"/>{% endfor %}
{% for t in row_ticks %}<text x="{{ left - 6 }}" y="{{ t[1] }}" text-anchor="end"
 dominant-baseline="middle">{{ t[0] }}</text>
{% endfor %}
{% for t in col_ticks %}<text x="{{ t[1] }}" y="{{ top - 8 }}" text-anchor="middle"
{%- if t[2] %} font-weight="bold" fill="#b2182b"{% endif %}>{{ t[0] }}</text>
{% endfor %}
</svg>
<h2>Pair clusters</h2>
<table><tr><th>cluster</th><th>pairs</th><th>mean cosine</th>
{%- if truth %}<th>contaminated</th><th>purity</th>{% endif %}
{% for r in row_spans %}<th>vs R{{ r }}</th>{% endfor %}</tr>
{% for c in col_rows %}<tr{% if c.flagged %} class="flag"{% endif %}><td>{{ c.label }}</td>
<td class="num">{{ c.size }}</td><td class="num">{{ c.mean }}</td>
{%- if truth %}<td class="num">{{ c.hits }}</td><td class="num">{{ c.purity }}</td>{% endif %}
{% for b in c.block %}<td class="num">{{ b }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% for c in col_rows %}
<h2>{{ c.label }}: top pairs</h2>
<table><tr><th>pair id</th><th>prompt</th><th>mean cosine</th>{% if truth %}<th>contaminated</th>{% endif %}</tr>
{% for t in c.top %}<tr><td>{{ t.id }}</td><td class="txt">{{ t.label }}</td><td class="num">{{ t.mean }}</td>
{% if truth %}<td>{{ t.truth }}</td>{% endif %}</tr>
{% endfor %}</table>
{% endfor %}
<h2>Prompt clusters</h2>
{% for r in row_rows %}
<h3>R{{ r.id }}: {{ r.size }} prompts, mean cosine {{ r.mean }}, vs flagged C{{ flagged.id }}: {{ r.vs_flagged }}</h3>
<table><tr><th>prompt</th><th>mean cosine</th></tr>
{% for t in r.top %}<tr><td class="txt">{{ t.prompt }}</td><td class="num">{{ t.mean }}</td></tr>
{% endfor %}</table>
{% endfor %}
</body></html>
"""


def _colour(v: float, m: float) -> str:
    t = max(-1.0, min(1.0, v / m))
    end = (178, 24, 43) if t > 0 else (33, 102, 172)
    a = abs(t)
    r, g, b = (round(255 + (e - 255) * a) for e in end)
    return f"#{r:02x}{g:02x}{b:02x}"


def _edges(n: int, bins: int) -> list[int]:
    return [round(k * n / bins) for k in range(bins + 1)]


def render_html(obj: "DiscoveryRun | DiscoveryResult") -> str:
    """The self-contained page; every string from data is escaped by jinja2 autoescape."""
    import jinja2

    result, meta = _parts(obj)
    s = result.cosine[list(result.row_order)][:, list(result.col_order)]
    n_rows, n_cols = s.shape
    m = _scale(s)
    width, height = _WIDTH - _LEFT - 8, _HEIGHT - _TOP - _BOTTOM
    ys = [_TOP + k * height / n_rows for k in range(n_rows + 1)]
    xs = [_LEFT + k * width / n_cols for k in range(n_cols + 1)]
    bins_r, bins_c = min(n_rows, MAX_SVG_ROWS), min(n_cols, MAX_SVG_COLS)
    re_, ce = _edges(n_rows, bins_r), _edges(n_cols, bins_c)
    cells = [(x, y, _colour(float(s[a:b, c:d].mean()), m))
             for y, (a, b) in enumerate(zip(re_, re_[1:])) for x, (c, d) in enumerate(zip(ce, ce[1:]))]
    rows = _boundaries(result.row_order, result.row_clusters)
    cols = _boundaries(result.col_order, result.col_clusters)
    by_id = {c.id: c for c in result.col_summaries}
    orig_col_mean = result.cosine.mean(axis=0)
    orig_row_mean = result.cosine.mean(axis=1)
    truth = result.pair_truth

    def fmt(x: float | None) -> str:
        return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"

    col_rows = []
    for c in result.col_summaries:
        col_rows.append({
            "label": _col_label(result, c), "size": c.size, "mean": fmt(c.mean_cosine),
            "flagged": c.id == result.flagged,
            "hits": c.n_contaminated, "purity": fmt(c.purity), "block": [fmt(x) for x in c.block_means],
            "top": [{"id": result.pair_ids[j], "label": result.pair_labels[j], "mean": fmt(orig_col_mean[j]),
                     "truth": "" if truth is None else ("yes" if truth[j] else "no")}
                    for j in result.top_members(c)]})
    row_rows = [{"id": r.id, "size": r.size, "mean": fmt(r.mean_cosine),
                 "vs_flagged": fmt(r.block_means[result.flagged - 1]),
                 "top": [{"prompt": result.prompt_labels[i], "mean": fmt(orig_row_mean[i])}
                         for i in result.top_members(r)]} for r in result.row_summaries]
    f = result.flagged_summary
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_TEMPLATE).render(
        profile=str(result.parameters.get("profile", "?")), layer=str(result.parameters.get("layer", "?")),
        n_rows=n_rows, n_cols=n_cols, scale=f"{m:.3f}",
        flagged={"id": f.id, "size": f.size, "mean": fmt(f.mean_cosine),
                 "purity": None if f.purity is None else fmt(f.purity), "hits": f.n_contaminated},
        recall=None if result.recall is None else fmt(result.recall), n_pos=result.n_contaminated,
        notes=list(meta.get("notes", [])), truth=truth is not None,
        svg_w=_WIDTH, svg_h=_HEIGHT, cells=cells, bins_r=bins_r, bins_c=bins_c, left=_LEFT, right=_LEFT + width,
        top=_TOP, bottom=_TOP + height,
        row_lines=[f"{ys[a]:.2f}" for _, a, _ in rows[1:]], col_lines=[f"{xs[a]:.2f}" for _, a, _ in cols[1:]],
        row_ticks=[(f"R{c}", f"{(ys[a] + ys[b]) / 2:.2f}") for c, a, b in rows],
        col_ticks=[(_col_label(result, by_id[c]), f"{(xs[a] + xs[b]) / 2:.2f}", c == result.flagged)
                   for c, a, b in cols],
        row_spans=[r.id for r in result.row_summaries], col_rows=col_rows, row_rows=row_rows)


# ------------------------------------------------------------------------------------------------ all
def write_outputs(obj: "DiscoveryRun | DiscoveryResult", out_dir: str | Path) -> dict[str, Path]:
    """clusters.json, heatmap.html and heatmap.png in `out_dir` (created), each replaced atomically."""
    require_matplotlib()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, None, "the output path exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in FILES}
    write_text_atomic(paths["clusters.json"], clusters_json(obj))
    write_text_atomic(paths["heatmap.html"], render_html(obj))
    write_png(obj, paths["heatmap.png"])
    return paths
