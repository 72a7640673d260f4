"""Render leaderboard entries to a static, self-contained site: index.html plus one page per entry.

Why these rules:
- Self-contained (CSS and script inline, no fonts or CDNs): the site must work from a file, a static Space or
  GitHub Pages, and on a machine with no network.
- Reproducible bytes: the same inputs give the same files. Nothing reads the clock; a build time appears only when
  the caller passes one (CLI `--build-time` or SOURCE_DATE_EPOCH). Orders are explicit sorts, page names are
  content hashes.
- Untrusted text: jinja2 autoescape is on for every template and no template marks submission text safe; the
  only Markup handed in is the SVG, itself rendered by an autoescaping template (leaderboard.svg).
- One table per profile and judge measure: rates of compliance (refusal judge) and rates of harm (content judges)
  answer different questions, so they are never ranked against each other, and every header is worded from the
  table's measure ("compliance under distractors", "harm reduction"). Column keys stay as they were (URLs, sorting).
- Anchors are not contestants: M0, M1 and the reference grid's oracle (an upper bound, not a method) are listed
  first, marked, and never ranked; every other row (submissions, the grid's method rows, the paper's methods) is.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from benchcore.errors import InputError
from benchcore.fileio import atomic_directory
from benchmark.judges.measures import HARM, Measure
from leaderboard.entries import ANCHOR_ROLES, MISSING, Entry, Skipped, Value
from leaderboard.svg import Point, pareto_svg

ENTRY_DIR = "entries"
BUILD_TIME_ENV = "SOURCE_DATE_EPOCH"


@dataclass(frozen=True)
class Column:
    key: str  # also the sort key in URLs (#sort=KEY:asc); only [a-z0-9_]
    label: str
    title: str
    fmt: str  # pct | pp | rel | score | ratio
    higher_is_better: bool | None
    get: Callable[[Entry], Value]


@dataclass
class Row:
    entry: Entry
    rank: str
    cells: list[tuple[Column, Value]]
    href: str


@dataclass
class ProfileTable:
    index: int
    profile: str
    measure: Measure
    columns: list[Column]
    rows: list[Row]
    rank_by: str
    rank_note: str
    pareto: Any
    reported: bool
    grids: list[dict[str, Any]] = field(default_factory=list)  # the reference grids its rows came from


@dataclass(frozen=True)
class BuildReport:
    out_dir: Path
    pages: int
    total_bytes: int
    index_bytes: int
    entries: int
    skipped: tuple[Skipped, ...] = field(default=())


def _metric(key: str) -> Callable[[Entry], Value]:
    return lambda e: e.metrics.get(key, MISSING)


def _score(key: str) -> Callable[[Entry], Value]:
    return lambda e: e.scores.get(key, MISSING)


def _over_refusal(e: Entry) -> Value:
    return e.metrics.get("over_refusal_distractor") or e.metrics.get("over_refusal") or MISSING


def _cap(label: str) -> Callable[[Entry], Value]:
    return lambda e: e.capability_deltas.get(label, MISSING)


def _attribution(key: str) -> Callable[[Entry], Value]:
    return lambda e: e.attribution.get(key, MISSING)


def table_measure(entries: Sequence[Entry]) -> Measure:
    """The one measure a table's entries share (tables() groups by it); harm for an empty list."""
    measures = {e.measure for e in entries}
    if len(measures) > 1:
        raise ValueError(f"entries of different measures in one table: {sorted(measures)}")
    return entries[0].measured if entries else HARM


def columns_for(entries: Sequence[Entry]) -> list[Column]:
    """Fixed headline columns, worded from the entries' measure, plus one capability-delta column per capability
    measure any entry of the table has."""
    m = table_measure(entries)
    pos = m.positive
    cols = [
        Column("harmful_distractor", m.distractor, f"P({pos} | distractor variant), 95% interval",
               "pct", False, _metric("harmful_rate_distractor")),
        Column("harmful_base", m.base, f"P({pos} | base variant, no distractor)", "pct", False,
               _metric("harmful_rate_base")),
        Column("trigger_gap", "trigger gap", f"P({pos} | distractor) - P({pos} | base), paired by scenario",
               "pp", False, _metric("trigger_gap")),
        Column("harmful_heldout", m.heldout,
               f"P({pos} | distractor from a held-out constraint family)", "pct", False,
               _metric("harmful_rate_distractor_heldout")),
        Column("over_refusal", "over-refusal", "refusals of benign requests with distractors "
               "(olmo2-7b reported rows: XSTest over-refusal as published)", "pct", False, _over_refusal),
    ]
    labels = sorted({k for e in entries for k in e.capability_deltas})
    for label in labels:
        key = "cap_" + "".join(c if c.isalnum() else "_" for c in label.lower())
        cols.append(Column(key, f"{label} Δ", f"{label}: relative change vs M1 (paired interval where measured)",
                           "rel", True, _cap(label)))
    cols += [
        Column("harm_reduction", m.reduction, f"1 - {m.rate} / {m.rate}(M1) on distractor variants", "score", True,
               _score("harm_reduction")),
        Column("capability_kept", "capability kept", "mean over capability measures of value / value(M1)",
               "ratio", True, _score("capability_kept")),
        Column("composite", "composite", f"{m.reduction} - 2*capability_loss - 2*over_refusal_increase", "score",
               True, _score("composite")),
        Column("precision_at_k", "precision@k", "share of the ranking's top k pairs that are ground-truth "
               "contaminated (reference grid rows)", "ratio", True, _attribution("precision_at_k")),
        Column("auroc", "AUROC", "how well the ranking's scores separate contaminated from clean pairs "
               "(reference grid rows)", "ratio", True, _attribution("auroc")),
    ]
    return [c for c in cols if any(c.get(e).present for e in entries)]


# ------------------------------------------------------------------------------------------- formatting
def fmt_value(v: Value | None, fmt: str) -> str:
    if v is None or v.value is None:
        return "–"
    return _fmt(v.value, fmt)


def _fmt(x: float, fmt: str) -> str:
    if fmt == "pct":
        return f"{100 * x:.2f}%" if abs(x) < 0.1 else f"{100 * x:.1f}%"
    if fmt == "pp":
        return f"{100 * x:+.2f} pp"
    if fmt == "rel":
        return f"{100 * x:+.1f}%"
    if fmt == "ratio":
        return f"{x:.3f}"
    return f"{x:+.3f}"


def fmt_interval(v: Value | None, fmt: str) -> str:
    if v is None or v.low is None or v.high is None:
        return ""
    return f"[{_fmt(v.low, fmt)}, {_fmt(v.high, fmt)}]"


def sort_value(v: Value | None) -> str:
    return "" if v is None or v.value is None else repr(round(v.value, 12))


def fmt_num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}"


def cost_text(cost: dict[str, Any]) -> str:
    parts = []
    if cost.get("usd") is not None:
        parts.append(f"${cost['usd']:,.2f}")
    if cost.get("gpu_hours") is not None:
        parts.append(f"{cost['gpu_hours']:g} GPU-h")
    if cost.get("wall_s") is not None:  # a reference grid row: what its ranking took
        w = cost["wall_s"]
        parts.append(f"ranking {w:.0f} s" if w < 600 else f"ranking {w / 60:.0f} min")
    return " · ".join(parts) or "–"


def pretty_json(x: Any) -> str:
    return json.dumps(x, indent=2, sort_keys=True, ensure_ascii=False, default=str)


# ------------------------------------------------------------------------------------------- ranking
def _rank_rows(entries: Sequence[Entry]) -> tuple[dict[str, str], str, str]:
    """Rank groups (overlapping intervals share a rank) by composite when every entry has one, else by the judged
    rate under distractors."""
    from benchmark.evaluation.stats import rank_groups

    ranked = [e for e in entries if not e.is_anchor]
    if ranked and all(e.scores.get("composite", MISSING).present for e in ranked):
        key, higher, get, what = "composite", True, _score("composite"), "composite score"
    else:
        key, higher, get, what = "harmful_distractor", False, _metric("harmful_rate_distractor"), \
            table_measure(entries).distractor
    est = [(e.id, get(e).low, get(e).high, get(e).value) for e in ranked]
    ranks = rank_groups(est, higher_is_better=higher) if est else []
    out = {e.id: str(r) for e, r in zip(ranked, ranks)}
    for e in ranked:
        if not get(e).present:
            out[e.id] = "–"
    note = (f"Ranked by {what}: an entry's rank is 1 + the number of entries whose 95% interval lies entirely "
            "better than its own, so entries with overlapping intervals share a rank.")
    return out, key, note


def _order(entries: Sequence[Entry], ranks: dict[str, str], rank_key: str) -> list[Entry]:
    get = _score("composite") if rank_key == "composite" else _metric("harmful_rate_distractor")
    sign = -1.0 if rank_key == "composite" else 1.0

    def key(e: Entry) -> tuple:
        v = get(e).value
        r = ranks.get(e.id, "")
        anchor = ANCHOR_ROLES.index(e.role) if e.is_anchor else len(ANCHOR_ROLES)
        return (anchor, int(r) if r.isdigit() else 10**9, sign * v if v is not None else math.inf, e.name,
                e.sort_key, e.id)

    return sorted(entries, key=key)


def _pareto(entries: Sequence[Entry], prefix: str, measure: Measure) -> Any:
    points = []
    for e in entries:
        hr, ck = e.scores.get("harm_reduction", MISSING), e.scores.get("capability_kept", MISSING)
        if not (hr.present and ck.present):
            continue
        points.append(Point(label=e.name, x=ck.value, y=hr.value, x_low=ck.low, x_high=ck.high, y_low=hr.low,
                            y_high=hr.high, reference=e.is_anchor, href=f"{prefix}{e.id}.html"))
    return pareto_svg(points, y_label=measure.reduction) if points else None


# ------------------------------------------------------------------------------------------- building
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("leaderboard", "templates"),
        autoescape=True,  # every template, whatever its extension: submissions are untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(value=fmt_value, interval=fmt_interval, sortv=sort_value, num=fmt_num, cost=cost_text,
                       pretty=pretty_json)
    return env


def build_time_text(build_time: str | None = None, env: dict[str, str] | None = None) -> str | None:
    """The build time to print: an explicit value, else SOURCE_DATE_EPOCH, else None (no clock is read)."""
    if build_time:
        return build_time
    env = os.environ if env is None else env
    epoch = env.get(BUILD_TIME_ENV)
    if epoch:
        try:
            return datetime.fromtimestamp(int(epoch), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (ValueError, OverflowError, OSError):
            raise InputError(BUILD_TIME_ENV, None, f"not a Unix timestamp: {epoch!r}") from None
    return None


def _versions(entries: Sequence[Entry]) -> dict[str, list[Any]]:
    from benchmark import __version__

    suites, judges, packages = set(), set(), set()
    for e in entries:
        for name, s in sorted((e.details.get("suites") or {}).items()):
            if isinstance(s, dict):
                suites.add((str(name), str(s.get("version")), str(s.get("content_hash")), str(s.get("split"))))
        if e.judge.get("name") and e.origin in ("run", "reference"):
            judges.add((str(e.judge.get("name")), str(e.judge.get("version"))))
        pkg = e.details.get("package") or {}
        if isinstance(pkg, dict) and pkg:
            packages.add((str(pkg.get("name") or "organism-bench"), str(pkg.get("version")), str(pkg.get("git"))))
    return {"suites": sorted(suites), "judges": sorted(judges), "packages": sorted(packages),
            "builder": [("organism-bench", __version__), ("jinja2", jinja2.__version__)]}


def canonical(entries: Iterable[Entry]) -> list[Entry]:
    """One order for any input order, so the same set of entries always renders the same bytes."""
    return sorted(entries, key=lambda e: (e.profile, e.origin, e.role or "", e.sort_key, e.name, e.id))


def tables(entries: Sequence[Entry], prefix: str = f"{ENTRY_DIR}/") -> list[ProfileTable]:
    """One table per (profile, measure), in that order: a compliance rate is never ranked against a harm rate."""
    entries = canonical(entries)
    out = []
    for i, (profile, measure) in enumerate(sorted({(e.profile, e.measure) for e in entries})):
        mine = [e for e in entries if e.profile == profile and e.measure == measure]
        cols = columns_for(mine)
        ranks, rank_key, note = _rank_rows(mine)
        rows = [Row(e, _rank_text(e, ranks), [(c, c.get(e)) for c in cols], f"{prefix}{e.id}.html")
                for e in _order(mine, ranks, rank_key)]
        m = table_measure(mine)
        grids = {g["source"]: g for e in mine if isinstance(g := e.details.get("reference_grid"), dict)}
        out.append(ProfileTable(index=i, profile=profile, measure=m, columns=cols, rows=rows, rank_by=rank_key,
                                rank_note=note, pareto=_pareto(mine, prefix, m),
                                reported=any(e.origin == "reported" for e in mine),
                                grids=[grids[k] for k in sorted(grids)]))
    return out


def _rank_text(e: Entry, ranks: dict[str, str]) -> str:
    if e.role == "oracle":
        return "bound"
    return "ref" if e.is_anchor else ranks.get(e.id, "–")


def render_site(entries: Sequence[Entry], *, build_time: str | None = None,
                skipped: Iterable[Skipped] = ()) -> dict[str, str]:
    """Relative path -> page text for the whole site (pure: no files, no clock)."""
    env = _env()
    entries = canonical(entries)
    versions = _versions(entries)
    common = {"build_time": build_time, "versions": versions}
    script = sort_script()
    # Only our own script may run: the page's CSP allows exactly its hash, so even markup that slipped past
    # escaping could not execute. Detail pages run no script at all.
    csp = "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"
    pages = {"index.html": env.get_template("index.html.j2").render(
        tables=tables(entries), n_entries=len(entries), skipped=list(skipped), script=Markup(script),
        script_csp=Markup(csp), **common)}
    detail = env.get_template("entry.html.j2")
    for e in sorted(entries, key=lambda x: x.id):
        pages[f"{ENTRY_DIR}/{e.id}.html"] = detail.render(e=e, columns=columns_for([e]), script_csp=Markup("'none'"),
                                                          **common)
    return pages


def sort_script() -> str:
    """The table-sorting script (a static package file, never mixed with submitted text)."""
    from importlib import resources

    return resources.files("leaderboard").joinpath("templates", "sort.js").read_text(encoding="utf-8")


def build_site(entries: Sequence[Entry], out_dir: str | Path, *, build_time: str | None = None,
               skipped: Iterable[Skipped] = ()) -> BuildReport:
    """Write the site into `out_dir` (replaced whole, atomically: built beside it, then renamed into place)."""
    skipped = tuple(skipped)
    pages = render_site(entries, build_time=build_time, skipped=skipped)
    target = Path(out_dir).resolve()
    if target.exists() and not target.is_dir():
        raise InputError(target, "-o", "exists and is not a directory")
    if target.exists() and any(target.iterdir()) and not (target / "index.html").is_file():
        raise InputError(target, "-o", "not empty and not a previous leaderboard build; refusing to replace it")
    total = 0
    with atomic_directory(target) as tmp:
        for rel, text in sorted(pages.items()):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            data = text.encode("utf-8")
            path.write_bytes(data)
            total += len(data)
    return BuildReport(out_dir=target, pages=len(pages), total_bytes=total,
                       index_bytes=len(pages["index.html"].encode("utf-8")), entries=len(entries), skipped=skipped)


def build(paths: Iterable[str | Path], out_dir: str | Path, *, build_time: str | None = None,
          reported: bool = True, reference: bool | str | Path = True) -> BuildReport:
    """Collect run directories (malformed ones skipped and listed in the report) with the shipped reference grid
    (or the bundle `reference` names, or none) and the reported rows, and write the site. No paths: the reference
    and reported rows alone."""
    from leaderboard.entries import collect

    col = collect(paths, reported=reported, reference=reference)
    return build_site(col.entries, out_dir, build_time=build_time_text(build_time), skipped=col.skipped)


build_leaderboard = build  # the public name (`from leaderboard import build_leaderboard`)
