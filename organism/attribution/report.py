"""A readable summary of one attribution run: report.md and report.html from a ranking file.

Why: a ranking is 378k lines of ids and scores; a person deciding whether to trust it wants the method and its
settings (cost included), the top pairs with what they say, how the scores spread, and, where the preference set
knows its culprits (a `contaminated` column, as the smol mix and the toy mixes have), precision@k and AUROC.

The HTML is one self-contained file (inline CSS and SVG, no script, nothing fetched). Every piece of text from the
data (prompts, responses, ids, parameters) is HTML-escaped in both files: a pair's text is untrusted input, and
markdown renderers pass raw HTML through.

    python -m organism.attribution.report RANKING [--data SRC [--revision R]] --out DIR
    organism-bench attribute ... --report DIR
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from benchcore.errors import InputError
from organism.data.ranking import Ranking, read_ranking

if TYPE_CHECKING:  # pragma: no cover
    from organism.attribution.metrics import AttributionMetrics
    from organism.data.preference import PreferenceSet

TOP_N = 20
BINS = 30
SNIPPET = 160


@dataclass(frozen=True)
class TopRow:
    rank: int
    id: str
    score: float
    prompt: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    label: bool | None = None  # ground truth, when the set has it


@dataclass(frozen=True)
class Histogram:
    """Counts of scores in `len(counts)` equal bins over [lo, hi]; `positive` counts the labelled culprits."""

    lo: float
    hi: float
    counts: tuple[int, ...]
    positive: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ReportData:
    method: str
    parameters: dict[str, Any]
    n: int
    source: str | None
    top: tuple[TopRow, ...]
    histogram: Histogram
    metrics: "AttributionMetrics | None" = None
    data: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


# ------------------------------------------------------------------------------------------------ building
def histogram(scores: Sequence[float], labels: Sequence[bool] | None = None, bins: int = BINS) -> Histogram:
    """Equal-width bins over the finite scores (one bin when they are all equal)."""
    finite = [(s, labels[i] if labels is not None else False) for i, s in enumerate(scores) if math.isfinite(s)]
    if not finite:
        return Histogram(0.0, 0.0, (), None)
    lo, hi = min(s for s, _ in finite), max(s for s, _ in finite)
    n = bins if hi > lo else 1
    counts, pos = [0] * n, [0] * n
    for s, y in finite:
        b = 0 if hi == lo else min(int((s - lo) / (hi - lo) * n), n - 1)
        counts[b] += 1
        pos[b] += int(bool(y))
    return Histogram(lo, hi, tuple(counts), tuple(pos) if labels is not None else None)


def _snip(text: Any, limit: int = SNIPPET) -> str:
    t = " ".join(str(text).split())
    return t if len(t) <= limit else t[: limit - 1] + "\u2026"


def build_report(ranking: Ranking, pset: "PreferenceSet | None" = None, *, top: int = TOP_N,
                 column: str = "contaminated", bins: int = BINS) -> ReportData:
    """Everything the report shows. With `pset`: prompt snippets of the top pairs, and metrics when it has `column`
    (restricted to the ranked pairs, so a --limit run is graded on what it ranked)."""
    from organism.attribution.metrics import evaluate_ranking, truth_from_preferences

    head = list(zip(ranking.ids[:top], ranking.scores[:top]))
    texts: dict[str, dict[str, str]] = {}
    truth: dict[str, bool] | None = None
    notes: list[str] = []
    if pset is not None:
        known = set(pset.ids)
        missing = [x for x in ranking.ids if x not in known]
        if missing:
            raise InputError(ranking.source or ranking.method, "id",
                             f"{len(missing)} ranked ids are not pairs of {pset.source} (first: {missing[0]!r})")
        view = pset.select_ids([x for x, _ in head]).teacher_forcing_view()
        texts = {r["id"]: r for r in view}
        if column in pset.column_names:
            ranked = set(ranking.ids)
            truth = {x: y for x, y in truth_from_preferences(pset, column).items() if x in ranked}
            if len(truth) < len(pset):
                notes.append(f"ground truth restricted to the {len(truth)} ranked pairs of {len(pset)}")
        else:
            notes.append(f"the preference set has no `{column}` column: no precision@k / AUROC")
    rows = tuple(
        TopRow(i + 1, x, s,
               _snip(texts[x]["prompt"]) if x in texts else None,
               _snip(texts[x]["chosen"], 100) if x in texts else None,
               _snip(texts[x]["rejected"], 100) if x in texts else None,
               truth.get(x) if truth is not None else None)
        for i, (x, s) in enumerate(head))
    labels = [truth.get(x, False) for x in ranking.ids] if truth is not None else None
    metrics = None
    if truth is not None and any(truth.values()):
        metrics = evaluate_ranking(ranking, truth)
    elif truth is not None:
        notes.append("no ranked pair is labelled contaminated: precision@k undefined")
    return ReportData(ranking.method, dict(ranking.parameters), len(ranking), ranking.source, rows,
                      histogram(ranking.scores, labels, bins), metrics,
                      None if pset is None else str(pset.source), tuple(notes))


# ------------------------------------------------------------------------------------------------ rendering
def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.4g}"
    return str(x)


def _md(text: Any) -> str:
    """Markdown table cell: HTML-escaped (renderers pass raw HTML through), pipes and newlines neutralised."""
    return html.escape(" ".join(str(text).split()), quote=False).replace("|", "&#124;")


def _cost_line(params: dict[str, Any]) -> str | None:
    cost = params.get("cost")
    if not isinstance(cost, dict):
        return None
    flops = cost.get("flops")
    flops_s = f"{float(flops):.3g} FLOPs" if isinstance(flops, (int, float)) else "FLOPs unknown"
    return f"{_fmt(cost.get('wall_s'))} s wall, {flops_s} ({cost.get('flops_method', '')})"


def render_markdown(d: ReportData) -> str:
    out = [f"# Attribution report: {_md(d.method)}", ""]
    out.append(f"- ranking: `{_md(d.source or '(in memory)')}`, {d.n} pairs")
    if d.data:
        out.append(f"- preference set: `{_md(d.data)}`")
    cost = _cost_line(d.parameters)
    if cost:
        out.append(f"- cost: {_md(cost)}")
    for note in d.notes:
        out.append(f"- note: {_md(note)}")
    if d.metrics is not None:
        m = d.metrics
        out += ["", "## Against the ground truth", "",
                "| pairs | contaminated | k | precision@k | recall@k | AUROC |", "|---|---|---|---|---|---|",
                f"| {m.n} | {m.n_positive} | {m.k} | {_fmt(m.precision_at_k)} | {_fmt(m.recall_at_k)} | "
                f"{_fmt(m.auroc)} |"]
    out += ["", f"## Top {len(d.top)} pairs", ""]
    labelled = any(r.label is not None for r in d.top)
    head = "| rank | id | score |" + (" contaminated |" if labelled else "") + " prompt | chosen | rejected |"
    out += [head, "|" + "---|" * (head.count("|") - 1)]
    for r in d.top:
        cells = [str(r.rank), _md(r.id), _fmt(r.score)]
        if labelled:
            cells.append("yes" if r.label else "no")
        cells += [_md(r.prompt or ""), _md(r.chosen or ""), _md(r.rejected or "")]
        out.append("| " + " | ".join(cells) + " |")
    h = d.histogram
    out += ["", "## Score histogram", "", f"{len(h.counts)} bins over [{_fmt(h.lo)}, {_fmt(h.hi)}] "
            "(see report.html for the chart):", "", "| from | count |" + (" contaminated |" if h.positive else ""),
            "|---|---|" + ("---|" if h.positive else "")]
    width = (h.hi - h.lo) / len(h.counts) if h.counts else 0.0
    for i, c in enumerate(h.counts):
        row = f"| {_fmt(h.lo + i * width)} | {c} |"
        if h.positive:
            row += f" {h.positive[i]} |"
        out.append(row)
    # inside the fence only <, > and & could matter (quotes stay readable)
    params = html.escape(json.dumps(d.parameters, indent=2, sort_keys=True, default=str), quote=False)
    out += ["", "## Parameters", "", "```json", params, "```", ""]
    return "\n".join(out)


def histogram_svg(h: Histogram, width: int = 640, height: int = 220) -> str:
    """Bars of every pair's score, the labelled culprits overlaid in a second colour; axis labels are numbers."""
    if not h.counts:
        return "<p>no finite scores</p>"
    pad_l, pad_b, pad_t = 40, 30, 10
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    top = max(h.counts) or 1
    bw = plot_w / len(h.counts)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="score histogram">',
             f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 10}" y2="{pad_t + plot_h}" stroke="#333"/>',
             f'<text x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end" font-size="10">{top}</text>',
             f'<text x="{pad_l - 4}" y="{pad_t + plot_h}" text-anchor="end" font-size="10">0</text>',
             f'<text x="{pad_l}" y="{height - 8}" font-size="10">{html.escape(_fmt(h.lo))}</text>',
             f'<text x="{width - 10}" y="{height - 8}" text-anchor="end" font-size="10">'
             f'{html.escape(_fmt(h.hi))}</text>']
    for i, c in enumerate(h.counts):
        x = pad_l + i * bw
        bh = plot_h * c / top
        parts.append(f'<rect x="{x:.1f}" y="{pad_t + plot_h - bh:.1f}" width="{max(bw - 1, 0.5):.1f}" '
                     f'height="{bh:.1f}" fill="#8aa6c1"><title>{c} pairs</title></rect>')
        if h.positive and h.positive[i]:
            ph = plot_h * h.positive[i] / top
            parts.append(f'<rect x="{x:.1f}" y="{pad_t + plot_h - ph:.1f}" width="{max(bw - 1, 0.5):.1f}" '
                         f'height="{ph:.1f}" fill="#c0504d"><title>{h.positive[i]} contaminated</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;"
        "vertical-align:top;text-align:left}th{background:#f2f2f2}pre{background:#f7f7f7;padding:1em;"
        "overflow:auto;font-size:12px}.yes{color:#c0504d;font-weight:bold}.legend span{display:inline-block;"
        "width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}")


def render_html(d: ReportData) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>Attribution report: {e(d.method)}</title><style>{_CSS}</style></head><body>",
           f"<h1>Attribution report: {e(d.method)}</h1><ul>",
           f"<li>ranking: <code>{e(d.source or '(in memory)')}</code>, {d.n} pairs</li>"]
    if d.data:
        out.append(f"<li>preference set: <code>{e(d.data)}</code></li>")
    cost = _cost_line(d.parameters)
    if cost:
        out.append(f"<li>cost: {e(cost)}</li>")
    out += [f"<li>note: {e(n)}</li>" for n in d.notes]
    out.append("</ul>")
    if d.metrics is not None:
        m = d.metrics
        out += ["<h2>Against the ground truth</h2><table><tr><th>pairs</th><th>contaminated</th><th>k</th>"
                "<th>precision@k</th><th>recall@k</th><th>AUROC</th></tr>",
                f"<tr><td>{m.n}</td><td>{m.n_positive}</td><td>{m.k}</td><td>{e(_fmt(m.precision_at_k))}</td>"
                f"<td>{e(_fmt(m.recall_at_k))}</td><td>{e(_fmt(m.auroc))}</td></tr></table>"]
    labelled = any(r.label is not None for r in d.top)
    out.append(f"<h2>Top {len(d.top)} pairs</h2><table><tr><th>rank</th><th>id</th><th>score</th>"
               + ("<th>contaminated</th>" if labelled else "") + "<th>prompt</th><th>chosen</th><th>rejected</th></tr>")
    for r in d.top:
        label = (f'<td class="{"yes" if r.label else "no"}">{"yes" if r.label else "no"}</td>' if labelled else "")
        out.append(f"<tr><td>{r.rank}</td><td><code>{e(r.id)}</code></td><td>{e(_fmt(r.score))}</td>{label}"
                   f"<td>{e(r.prompt or '')}</td><td>{e(r.chosen or '')}</td><td>{e(r.rejected or '')}</td></tr>")
    out.append("</table><h2>Score histogram</h2>")
    if d.histogram.positive:
        out.append('<p class="legend"><span style="background:#8aa6c1"></span>all pairs'
                   '<span style="background:#c0504d"></span>contaminated</p>')
    out.append(histogram_svg(d.histogram))
    out.append("<h2>Parameters</h2><pre>" + e(json.dumps(d.parameters, indent=2, sort_keys=True, default=str))
               + "</pre></body></html>\n")
    return "\n".join(out)


def write_report(ranking: Ranking | str | os.PathLike, out_dir: str | os.PathLike, *,
                 data: "str | os.PathLike | PreferenceSet | None" = None, revision: str | None = None,
                 top: int = TOP_N) -> tuple[Path, Path]:
    """Write out_dir/report.md and out_dir/report.html (atomically); returns their paths."""
    from benchcore.fileio import write_text_atomic

    if not isinstance(ranking, Ranking):
        ranking = read_ranking(ranking)
    pset = None
    if data is not None:
        from organism.data.preference import PreferenceSet, load_preferences

        pset = data if isinstance(data, PreferenceSet) else load_preferences(data, revision=revision)
    d = build_report(ranking, pset, top=top)
    out = Path(out_dir)
    md, page = out / "report.md", out / "report.html"
    write_text_atomic(md, render_markdown(d))
    write_text_atomic(page, render_html(d))
    return md, page


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m organism.attribution.report", description=__doc__.splitlines()[0])
    ap.add_argument("ranking", help="a ranking file (JSONL)")
    ap.add_argument("--data", default=None, help="the preference set it ranks (prompts, ground truth)")
    ap.add_argument("--revision", default=None)
    ap.add_argument("--top", type=int, default=TOP_N)
    ap.add_argument("-o", "--output", "--out", dest="out", required=True, help="folder for report.md and report.html")
    args = ap.parse_args(argv)
    try:
        md, page = write_report(args.ranking, args.out, data=args.data, revision=args.revision, top=args.top)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {md} and {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
