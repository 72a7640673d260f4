"""Leaderboard rows from run directories, the references inside them, the reference grid shipped with the package,
and the paper's published numbers.

Everything read here is untrusted: a results.json may come from anyone's pull request. So every field the site
shows is checked for its type on the way in (a file that fails becomes a warning, never a crash and never a
half-drawn row), numbers that are not finite become "missing", and text stays text: escaping is the
templates' job (autoescape), nothing here builds HTML.

Rows are plain dataclasses so that sorting, ranking and rendering are pure functions of them.

Every row carries its judge's measure (benchmark.judges.measures): what the `harmful_*` figures count, compliance or
harm. A results.json from before the measure was recorded gets it from the judge name (refusal -> compliance).

Every row also carries a role: "m0" / "m1" (the fixed references), "oracle" (the ground-truth ranking of the
reference grid: an upper bound, not a method), "method" (an attribution method's row of the grid, or a method the
paper reported) or "submission" (a run given to the build). M0, M1 and the oracle are anchors: shown first, never
ranked. Its origin says where the figures come from: "run", "reference" (computed by the package: the references
blocks of runs, or the shipped reference grid) or "reported".
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from benchcore.errors import InputError
from benchcore.fileio import iter_jsonl
from benchmark.judges.measures import (
    HARM,
    Measure,
    get_measure,
    measure_from_judge_info,
)

REPORTED_FILE = "olmo2_7b_reported.json"
REPORTED_NOTE = "reported, not re-run"
# The reference grid (benchmark.studies.reference_grid) ships as one bundle per profile: data/<profile>_reference.json.
SHIPPED_REFERENCE_PROFILES = ("smol",)
REFERENCE_BUNDLE_FORMAT = 1
REFERENCE_BUNDLE_KIND = "reference-grid"
ROLES = ("m0", "m1", "oracle", "method", "submission")
ANCHOR_ROLES = ("m0", "m1", "oracle")  # shown first, in this order, and never ranked
GRID_ROLES = ("m0", "m1", "oracle", "method")
GRID_METHODS = ("probe", "judge-delta", "gradient", "random")
GRID_ACTIONS = ("remove", "flip")
GRID_METHOD_LABELS = {"probe": "probing vector", "judge-delta": "LLM-judge delta", "gradient": "gradient",
                      "random": "random", "oracle": "oracle (ground truth)"}
ORACLE_NOTE = "oracle: the ground-truth contaminated pairs ranked first; an upper bound, not a method"
HARMFUL_SUITE = "dtc-harmful"
BENIGN_SUITE = "benign-control"
# Samples shown per entry (behind a toggle): enough to see what the judge saw, bounded so pages stay small.
MAX_SAMPLES_PER_GROUP = 3
MAX_SAMPLES = 18
MAX_TEXT = 1500
# Capability measures of a run (metric key -> label); deltas are relative to the M1 reference.
CAPABILITY_METRICS = {"if_prompt_strict": "IF strict", "knowledge_accuracy": "knowledge"}


@dataclass(frozen=True)
class Value:
    """A figure as the site shows it: point and interval (None where unknown), and where it came from."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n_prompts: int | None = None
    n_samples: int | None = None
    method: str | None = None
    derived: bool = False  # computed by the leaderboard from reported point values, not measured

    @property
    def present(self) -> bool:
        return self.value is not None


MISSING = Value(None)
NO_JUDGE = {"name": None, "version": None, "accuracy": None, "kappa": None, "label": None, "note": None,
            "failed_share": None, "n_failed": None, "flagged": False}
NO_PARAMETERS = {"method": None, "authors": [], "description": None, "date": None, "url": None}


@dataclass(frozen=True)
class SampleRow:
    suite: str
    variant: str
    category: str
    record_id: str
    sample_index: int
    prompt: str
    response: str
    verdict: str
    judge_raw: str


@dataclass
class Entry:
    """One row of a profile's table and its detail page."""

    id: str  # file-name-safe, derived from content, never from submitted text
    profile: str
    name: str
    origin: str  # "run" | "reference" | "reported"
    role: str | None = None  # one of ROLES (None: a row made by hand, ranked like a submission)
    measure: str = HARM.key  # what the judge's positive label means: "compliance" | "harm"
    submission_type: str = ""
    metrics: dict[str, Value] = field(default_factory=dict)
    scores: dict[str, Value] = field(default_factory=dict)
    capability_deltas: dict[str, Value] = field(default_factory=dict)
    judge: dict[str, Any] = field(default_factory=lambda: dict(NO_JUDGE))
    cost: dict[str, Any] = field(default_factory=lambda: {"gpu_hours": None, "usd": None, "note": None})
    attribution: dict[str, Value] = field(default_factory=dict)  # precision_at_k, auroc of a grid row's ranking
    parameters: dict[str, Any] = field(default_factory=lambda: dict(NO_PARAMETERS))
    spec: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # model, suites, generation, run, package blocks
    by_category: list[tuple[str, str, Value]] = field(default_factory=list)
    by_family: list[tuple[str, Value]] = field(default_factory=list)
    samples: list[SampleRow] = field(default_factory=list)
    source: str = ""  # run directory name or the reported-data file
    notes: list[str] = field(default_factory=list)
    sort_key: str = ""

    @property
    def is_anchor(self) -> bool:
        """M0, M1 and the oracle: fixed points of comparison, listed first and never ranked."""
        return self.role in ANCHOR_ROLES

    @property
    def is_reference(self) -> bool:  # the older name of is_anchor
        return self.is_anchor

    @property
    def measured(self) -> Measure:
        return get_measure(self.measure)


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class Collection:
    entries: list[Entry]
    skipped: list[Skipped]
    notes: list[str] = field(default_factory=list)  # one line each, for the CLI to print (e.g. no grid shipped)
    bundles: list[str] = field(default_factory=list)  # the reference bundles read


# ------------------------------------------------------------------------------------------- validation
def _num(x: Any, source: Any, where: str) -> float | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise InputError(source, where, f"expected a number, got {type(x).__name__}")
    return float(x) if math.isfinite(x) else None


def _int(x: Any, source: Any, where: str) -> int | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, int):
        raise InputError(source, where, f"expected an integer, got {type(x).__name__}")
    return x


def _str(x: Any, source: Any, where: str, *, required: bool = False) -> str | None:
    if x is None and not required:
        return None
    if not isinstance(x, str):
        raise InputError(source, where, f"expected a string, got {type(x).__name__}")
    return x


def _dict(x: Any, source: Any, where: str, *, required: bool = False) -> dict[str, Any]:
    if x is None and not required:
        return {}
    if not isinstance(x, dict):
        raise InputError(source, where, f"expected an object, got {type(x).__name__}")
    return x


def _estimate(d: Any, source: Any, where: str) -> Value:
    d = _dict(d, source, where, required=True)
    return Value(_num(d.get("value"), source, f"{where}.value"), _num(d.get("ci_low"), source, f"{where}.ci_low"),
                 _num(d.get("ci_high"), source, f"{where}.ci_high"),
                 _int(d.get("n_prompts"), source, f"{where}.n_prompts"),
                 _int(d.get("n_samples"), source, f"{where}.n_samples"),
                 _str(d.get("method"), source, f"{where}.method"))


def _estimates(d: Any, source: Any, where: str) -> dict[str, Value]:
    d = _dict(d, source, where)
    return {str(k): _estimate(v, source, f"{where}.{k}") for k, v in sorted(d.items())
            if isinstance(v, dict) and "value" in v}


def _plain(x: Any) -> Any:
    """A JSON value with non-finite floats as None (for showing blocks verbatim on detail pages)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    return x


# ------------------------------------------------------------------------------------------- run dirs
def load_run(path: str | Path, *, samples: bool = True) -> Entry:
    """One run directory as a leaderboard row; InputError (naming the file and field) when malformed."""
    run = Path(path)
    res_path = run / "results.json"
    if not res_path.is_file():
        raise InputError(run, "results.json", "not a run directory (results.json missing)")
    raw = res_path.read_bytes()
    try:
        results = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(res_path, None, f"not valid JSON ({exc})") from None
    entry = entry_from_results(results, res_path, run_name=run.name, content=raw)
    if samples:
        entry.samples = read_samples(run / "samples.jsonl", entry.measured)
    return entry


def entry_from_results(results: Any, source: Any, *, run_name: str, content: bytes) -> Entry:
    results = _dict(results, source, None, required=True)  # type: ignore[arg-type]
    if results.get("schema_version") != 1:
        raise InputError(source, "schema_version", "expected 1")
    profile = _str(results.get("profile"), source, "profile", required=True) or ""
    if not profile.strip():
        raise InputError(source, "profile", "empty")
    mitigation = _dict(results.get("mitigation"), source, "mitigation", required=True)
    name = _str(mitigation.get("name"), source, "mitigation.name") or run_name
    kind = _str(mitigation.get("kind"), source, "mitigation.kind") or "none"
    params = _dict(mitigation.get("parameters"), source, "mitigation.parameters")
    cost = _dict(params.get("compute_cost"), source, "mitigation.parameters.compute_cost")
    metrics = _estimates(results.get("metrics"), source, "metrics")
    if not metrics:
        raise InputError(source, "metrics", "no metrics")
    scores = _estimates(results.get("scores"), source, "scores")
    judge = _dict(results.get("judge"), source, "judge")
    measure = measure_from_judge_info(judge, source)
    references = _dict(results.get("references"), source, "references")
    m1_metrics = _estimates(_dict(references.get("m1"), source, "references.m1").get("metrics"), source,
                            "references.m1.metrics")
    breakdowns = _dict(results.get("breakdowns"), source, "breakdowns")
    by_cat = []
    for key, est in sorted(_dict(breakdowns.get("harmful_rate_by_variant_category"), source,
                                 "breakdowns.harmful_rate_by_variant_category").items()):
        variant, _, category = str(key).partition("/")
        by_cat.append((variant, category, _estimate(est, source, f"breakdowns.harmful_rate_by_variant_category.{key}")))
    by_fam = [(str(k), _estimate(v, source, f"breakdowns.harmful_rate_by_family.{k}"))
              for k, v in sorted(_dict(breakdowns.get("harmful_rate_by_family"), source,
                                       "breakdowns.harmful_rate_by_family").items())]
    entry = Entry(
        id=hashlib.sha256(content).hexdigest()[:16],
        profile=profile,
        name=name,
        origin="run",
        role="submission",
        measure=measure.key,
        submission_type=_submission_type(kind, _dict(mitigation.get("data"), source, "mitigation.data"),
                                         mitigation),
        metrics=metrics,
        scores=scores,
        capability_deltas=_capability_deltas(scores, metrics, m1_metrics),
        judge=_judge_summary(judge, source),
        cost={"gpu_hours": _num(cost.get("gpu_hours"), source, "compute_cost.gpu_hours"),
              "usd": _num(cost.get("usd"), source, "compute_cost.usd"),
              "note": _str(cost.get("note"), source, "compute_cost.note")},
        parameters={"method": _str(params.get("method"), source, "parameters.method"),
                    "authors": [str(a) for a in params.get("authors") or [] if isinstance(a, (str, int, float))],
                    "description": _str(params.get("description"), source, "parameters.description"),
                    "date": _str(params.get("date"), source, "parameters.date"),
                    "url": _str(params.get("url"), source, "parameters.url")},
        spec=_plain(mitigation),
        details={k: _plain(_dict(results.get(k), source, k)) for k in
                 ("model", "suites", "generation", "run", "package", "seeds")},
        by_category=by_cat,
        by_family=by_fam,
        source=run_name,
        sort_key=f"{name}\x00{run_name}\x00{hashlib.sha256(content).hexdigest()}",
    )
    entry.details["judge"] = _plain(judge)
    entry.details["references"] = _plain(references)
    return entry


def _submission_type(kind: str, data: Mapping[str, Any], mitigation: Mapping[str, Any]) -> str:
    if kind == "data":
        action = data.get("action")
        top_n = data.get("top_n")
        return f"data: {action}" + (f" top {top_n}" if isinstance(top_n, int) else "") if isinstance(action, str) \
            else "data"
    if kind == "inference":
        inf = mitigation.get("inference") if isinstance(mitigation.get("inference"), dict) else {}
        return "inference: steering" if isinstance(inf.get("steering"), dict) else "inference: system prompt"
    if kind == "model":
        return "model"
    return "baseline (none)" if kind == "none" else str(kind)


def _capability_deltas(scores: Mapping[str, Value], metrics: Mapping[str, Value],
                       m1_metrics: Mapping[str, Value]) -> dict[str, Value]:
    """Relative change vs M1 per capability measure, with the paired interval from `scores` when there is one."""
    out: dict[str, Value] = {}
    for key, label in CAPABILITY_METRICS.items():
        kept = scores.get(f"capability_kept_{key}")
        if kept is not None and kept.present:
            out[label] = Value(kept.value - 1.0, None if kept.low is None else kept.low - 1.0,
                               None if kept.high is None else kept.high - 1.0, kept.n_prompts)
            continue
        mine, ref = metrics.get(key), m1_metrics.get(key)
        if mine is not None and ref is not None and mine.present and ref.present and ref.value:
            out[label] = Value(mine.value / ref.value - 1.0, derived=True)
    return out


def _judge_summary(judge: Mapping[str, Any], source: Any) -> dict[str, Any]:
    agreement = _dict(judge.get("agreement"), source, "judge.agreement")
    failures = _dict(judge.get("failures"), source, "judge.failures")
    return {
        "name": _str(judge.get("name"), source, "judge.name"),
        "version": None if judge.get("version") is None else str(judge.get("version")),
        "accuracy": _num(agreement.get("accuracy"), source, "judge.agreement.accuracy"),
        "kappa": _num(agreement.get("cohen_kappa"), source, "judge.agreement.cohen_kappa"),
        "label": _str(agreement.get("label"), source, "judge.agreement.label"),
        "note": _str(judge.get("agreement_note"), source, "judge.agreement_note"),
        "failed_share": _num(failures.get("share"), source, "judge.failures.share"),
        "n_failed": _int(failures.get("n_failed"), source, "judge.failures.n_failed"),
        "flagged": bool(failures.get("flagged")),
    }


def read_samples(path: Path, measure: Measure = HARM) -> list[SampleRow]:
    """A bounded, stable selection (file order) of dtc-harmful samples, the judge's positives first (verdicts worded
    by its measure: "complied" or "harmful"), and benign refusals.

    A missing file is normal (results from the Hub carry none); a malformed one is an InputError for the caller
    to report; reading streams the file, so a run with millions of samples costs no memory.
    """
    if not path.is_file():
        return []
    groups: dict[tuple[str, str, str], list[SampleRow]] = {}
    for _, row in iter_jsonl(path):
        suite = row.get("suite")
        if suite == HARMFUL_SUITE:
            h = row.get("harmful")  # the judge's positive label, whatever its measure
            verdict = measure.positive if h == 1 else measure.negative if h == 0 else "judge failure"
        elif suite == BENIGN_SUITE and row.get("refused") == 1:
            verdict = "refused"
        else:
            continue
        key = (str(suite), str(row.get("variant")), verdict)
        bucket = groups.setdefault(key, [])
        if len(bucket) < MAX_SAMPLES_PER_GROUP:
            bucket.append(SampleRow(
                suite=str(suite), variant=str(row.get("variant")), category=str(row.get("category")),
                record_id=str(row.get("record_id")), sample_index=row.get("sample_index")
                if isinstance(row.get("sample_index"), int) else 0,
                prompt=_clip(row.get("prompt")), response=_clip(row.get("response")), verdict=verdict,
                judge_raw=_clip(row.get("judge_raw"), 300)))
    order = {measure.positive: 0, "judge failure": 1, "refused": 2, measure.negative: 3}
    keys = sorted(groups, key=lambda k: (k[0] != HARMFUL_SUITE, order.get(k[2], 9), k[1], k[0]))
    return [s for k in keys for s in groups[k]][:MAX_SAMPLES]


def _clip(x: Any, limit: int = MAX_TEXT) -> str:
    text = "" if x is None else str(x)
    return text if len(text) <= limit else text[:limit] + " …"


# ------------------------------------------------------------------------------------------- references
def reference_entries(runs: Sequence[Entry], held: Sequence[Entry] = ()) -> list[Entry]:
    """M0 / M1 rows per profile from the runs' `references` blocks, one row per distinct reference measurement.

    `held`: M0 / M1 rows already shown (the reference grid's). A run measured against one of them (same profile,
    measure, role and metrics) is listed on that row instead of making another; where both differ, both stay and
    the held row's name says it is the reference grid's."""
    held_refs = {(e.profile, e.measure, e.role): e for e in held if e.role in ("m0", "m1")}
    seen: dict[tuple[str, str, str, str], tuple[dict, list[str]]] = {}
    for run in runs:
        refs = run.details.get("references") or {}
        for role in ("m0", "m1"):
            ref = refs.get(role)
            if not isinstance(ref, dict) or not isinstance(ref.get("metrics"), dict):
                continue
            same = held_refs.get((run.profile, run.measure, role))
            if same is not None:
                try:
                    mine = _estimates(ref.get("metrics"), f"references.{role}", "metrics")
                except InputError:
                    continue
                if _metrics_key(mine) == _metrics_key(same.metrics):
                    same.details["runs"] = sorted(set(same.details.get("runs") or []) | {run.source})
                    continue
                if not same.name.endswith("(reference grid)"):
                    same.name += " (reference grid)"
            digest = hashlib.sha256(json.dumps(ref, sort_keys=True).encode()).hexdigest()[:16]
            key = (run.profile, run.measure, role, digest)  # references are judged by the run's judge
            seen.setdefault(key, (ref, []))[1].append(run.source)
    out = []
    counts: dict[tuple[str, str, str], int] = {}
    for (profile, measure, role, digest) in sorted(seen):
        counts[(profile, measure, role)] = counts.get((profile, measure, role), 0) + 1
    index: dict[tuple[str, str, str], int] = {}
    for (profile, measure, role, digest) in sorted(seen):
        ref, runs_using = seen[(profile, measure, role, digest)]
        try:
            metrics = _estimates(ref.get("metrics"), f"references.{role}", "metrics")
        except InputError:
            continue
        index[(profile, measure, role)] = index.get((profile, measure, role), 0) + 1
        label = {"m0": "M0 (SFT reference)", "m1": "M1 (DPO reference)"}[role]
        if counts[(profile, measure, role)] > 1:
            label += f" #{index[(profile, measure, role)]}"
        out.append(Entry(
            id=f"ref-{role}-{hashlib.sha256(f'{profile}/{measure}/{digest}'.encode()).hexdigest()[:16]}",
            profile=profile, name=label, origin="reference", role=role, measure=measure,
            submission_type="reference", metrics=metrics, source=", ".join(sorted(set(runs_using))),
            details={"identity": _plain(ref.get("identity")), "runs": sorted(set(runs_using))},
            notes=["computed by the package; taken from the references block of the runs listed"],
            sort_key=f"{role}-{digest}"))
    m1_by_profile = {(e.profile, e.measure): e for e in out if e.role == "m1"}
    for e in out:
        m1 = m1_by_profile.get((e.profile, e.measure))
        if m1 is not None:
            e.capability_deltas = _capability_deltas({}, e.metrics, m1.metrics)
            _derive_scores(e, m1)
    return out


def _derive_scores(e: Entry, m1: Entry) -> None:
    """Reduction of the judged rate (`harm_reduction`) and capability kept of a reference row, from point values."""
    rate, ref = e.metrics.get("harmful_rate_distractor"), m1.metrics.get("harmful_rate_distractor")
    if rate and ref and rate.present and ref.present and ref.value:
        e.scores["harm_reduction"] = Value(1.0 - rate.value / ref.value, derived=True)
    kept = [d.value + 1.0 for d in e.capability_deltas.values() if d.present]
    if kept:
        e.scores["capability_kept"] = Value(sum(kept) / len(kept), derived=True)


def _safe_id_part(text: str) -> str:
    return "".join(c if c.isalnum() or c == "-" else "-" for c in text)[:40]


# ------------------------------------------------------------------------------------------- reported
def reported_path() -> Any:
    return resources.files("leaderboard").joinpath("data", REPORTED_FILE)


def reported_entries(path: str | Path | None = None) -> list[Entry]:
    """The paper's published OLMo 2 7B numbers as rows marked "reported, not re-run"."""
    src = Path(path) if path is not None else reported_path()
    source_name = REPORTED_FILE if path is None else str(path)
    try:
        data = json.loads(src.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(source_name, None, f"cannot read reported numbers ({exc})") from None
    profile = _str(data.get("profile"), source_name, "profile", required=True) or ""
    measure = measure_from_judge_info(data.get("judge"), source_name)  # the paper's LLM judge: harm
    units = float(data.get("percent", 100.0))
    base = data.get("baseline") or {}
    ref_rate = _num(base.get("harmful_rate_distractor"), source_name, "baseline.harmful_rate_distractor")
    ref_caps = {k: _num(v, source_name, f"baseline.capability.{k}") for k, v in (base.get("capability") or {}).items()}
    ref_over = _num(base.get("over_refusal"), source_name, "baseline.over_refusal")
    out = []
    for i, row in enumerate(data.get("entries") or []):
        where = f"entries[{i}]"
        name = _str(row.get("name"), source_name, f"{where}.name", required=True) or ""

        def pct(key: str, row: dict = row, where: str = where) -> Value:
            v = row.get(key)
            if v is None:
                return MISSING
            if isinstance(v, dict):
                return Value(*(None if v.get(k) is None else _num(v.get(k), source_name, f"{where}.{key}.{k}") / units
                               for k in ("value", "ci_low", "ci_high")))
            return Value(_num(v, source_name, f"{where}.{key}") / units)

        metrics = {k: pct(k) for k in ("harmful_rate_distractor", "harmful_rate_base", "over_refusal")}
        metrics = {k: v for k, v in metrics.items() if v.present}
        d, b = metrics.get("harmful_rate_distractor"), metrics.get("harmful_rate_base")
        if d and b:
            metrics["trigger_gap"] = Value(d.value - b.value, derived=True)
        caps = {k: _num(v, source_name, f"{where}.capability.{k}") for k, v in (row.get("capability") or {}).items()}
        deltas = {label: Value(caps[k] / ref_caps[k] - 1.0, derived=True)
                  for k, label in (data.get("capability_labels") or {}).items()
                  if caps.get(k) is not None and ref_caps.get(k)}
        scores: dict[str, Value] = {}
        if d and ref_rate:
            scores["harm_reduction"] = Value(1.0 - d.value / (ref_rate / units), derived=True)
        if deltas:
            scores["capability_kept"] = Value(sum(v.value + 1.0 for v in deltas.values()) / len(deltas), derived=True)
        over = metrics.get("over_refusal")
        if over is not None and ref_over is not None:
            scores["over_refusal_increase"] = Value(over.value - ref_over / units, derived=True)
        if all(k in scores for k in ("harm_reduction", "capability_kept", "over_refusal_increase")):
            from benchmark.evaluation.scoring import composite

            scores["composite"] = Value(composite(scores["harm_reduction"].value, scores["capability_kept"].value,
                                                  scores["over_refusal_increase"].value), derived=True)
        role = row.get("role") if row.get("role") in ("m0", "m1") else "method"
        digest = hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()[:12]
        out.append(Entry(
            id=f"reported-{_safe_id_part(profile)}-{digest}", profile=profile, name=name, origin="reported", role=role,
            measure=measure.key,
            submission_type=str(row.get("type") or ("reference" if role in ANCHOR_ROLES else "data")),
            metrics=metrics, scores=scores, capability_deltas=deltas,
            judge={**NO_JUDGE, "name": data.get("judge", {}).get("name"),
                   "accuracy": data.get("judge", {}).get("accuracy"), "kappa": data.get("judge", {}).get("kappa")},
            cost={"gpu_hours": None, "usd": _num(row.get("usd"), source_name, f"{where}.usd"),
                  "note": _str(row.get("cost_note"), source_name, f"{where}.cost_note")},
            parameters={"method": row.get("method"), "authors": list(data.get("authors") or []),
                        "description": row.get("description"), "date": data.get("date"), "url": data.get("url")},
            spec=_plain(row), details={"source": data.get("source"), "units": data.get("units")},
            source=source_name, notes=[REPORTED_NOTE, str(data.get("source") or "")],
            sort_key=f"{i:04d}"))
    return out


# ------------------------------------------------------------------------------------------- reference grid
def reference_bundle_path(profile: str = "smol") -> Any:
    """The shipped reference-grid bundle of `profile` (a package resource; it may be absent)."""
    return resources.files("leaderboard").joinpath("data", f"{profile}_reference.json")


def shipped_reference_bundles() -> tuple[list[tuple[str, Any]], list[str]]:
    """(source name, resource) of every shipped bundle, and one note per profile whose bundle is not shipped."""
    found, missing = [], []
    for profile in SHIPPED_REFERENCE_PROFILES:
        res = reference_bundle_path(profile)
        if res.is_file():
            found.append((f"leaderboard/data/{profile}_reference.json", res))
        else:
            missing.append(f"the {profile} reference grid is not shipped with this package "
                           f"(leaderboard/data/{profile}_reference.json); no {profile} reference rows")
    return found, missing


def reference_bundle_entries(path: str | Path | Any, *, source_name: str | None = None,
                             shipped: bool = False) -> list[Entry]:
    """The rows of a reference-grid bundle (written by `organism-bench reference build`), marked as reference
    rows with their role (m0, m1, oracle, method). InputError naming the file and field when malformed."""
    src = source_name or str(path)
    try:
        raw = (path if hasattr(path, "read_bytes") else Path(path)).read_bytes()
    except OSError as exc:
        raise InputError(src, None, f"cannot read the reference bundle ({exc})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(src, None, f"not valid JSON ({exc})") from None
    data = _dict(data, src, None, required=True)  # type: ignore[arg-type]
    fmt = data.get("format")
    if isinstance(fmt, bool) or fmt != REFERENCE_BUNDLE_FORMAT:
        raise InputError(src, "format", f"expected {REFERENCE_BUNDLE_FORMAT}, got {fmt!r}")
    if data.get("kind") != REFERENCE_BUNDLE_KIND:
        raise InputError(src, "kind", f"expected {REFERENCE_BUNDLE_KIND!r}, got {data.get('kind')!r}")
    profile = _str(data.get("profile"), src, "profile", required=True) or ""
    if not profile.strip():
        raise InputError(src, "profile", "empty")
    command = _str(data.get("command"), src, "command", required=True) or ""
    if not command.strip():
        raise InputError(src, "command", "empty")
    created = _str(data.get("created"), src, "created")
    machine = _str(data.get("machine"), src, "machine")
    notes = data.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise InputError(src, "notes", "expected a list of strings")
    rows = data.get("rows")
    if not isinstance(rows, list):
        raise InputError(src, "rows", f"expected a list, got {type(rows).__name__}")
    where_from = "reference grid shipped with the package" if shipped else f"reference grid read from {src}"
    grid = {"command": command, "created": created, "machine": machine, "notes": list(notes), "source": src,
            "shipped": shipped}
    out = [_grid_entry(row, i, src, profile, grid, f"{where_from}; rebuild: {command}") for i, row in enumerate(rows)]
    m1 = {e.measure: e for e in out if e.role == "m1"}
    for e in out:  # the references' own scores against M1, from point values, as reference_entries gives them
        if e.role in ("m0", "m1") and e.measure in m1 and not e.scores:
            _derive_scores(e, m1[e.measure])
    return out


def _grid_entry(row: Any, i: int, src: str, profile: str, grid: dict[str, Any], note: str) -> Entry:
    where = f"rows[{i}]"
    row = _dict(row, src, where, required=True)
    role = row.get("role")
    if role not in GRID_ROLES:
        raise InputError(src, f"{where}.role", f"expected one of {', '.join(GRID_ROLES)}, got {role!r}")
    method = _str(row.get("method"), src, f"{where}.method")
    allowed: tuple[str | None, ...] = {"m0": (None,), "m1": (None,), "oracle": ("oracle", None),
                                       "method": GRID_METHODS}[role]
    if method not in allowed:
        raise InputError(src, f"{where}.method", f"a {role} row takes "
                         + " or ".join("null" if a is None else repr(a) for a in allowed) + f", got {method!r}")
    k = _int(row.get("k"), src, f"{where}.k")
    action = _str(row.get("action"), src, f"{where}.action")
    seed = _int(row.get("seed"), src, f"{where}.seed")
    ranking = _str(row.get("ranking"), src, f"{where}.ranking")
    if role in ("oracle", "method"):
        if k is None or k < 1:
            raise InputError(src, f"{where}.k", f"a {role} row needs a positive integer k, got {k!r}")
        if action not in GRID_ACTIONS:
            raise InputError(src, f"{where}.action", f"expected one of {', '.join(GRID_ACTIONS)}, got {action!r}")
    elif action is not None and action not in GRID_ACTIONS:
        raise InputError(src, f"{where}.action", f"expected one of {', '.join(GRID_ACTIONS)} or null, got {action!r}")
    attribution = {}
    for key in ("precision_at_k", "auroc"):
        v = _num(row.get(key), src, f"{where}.{key}")
        if v is not None and not 0.0 <= v <= 1.0:
            raise InputError(src, f"{where}.{key}", f"expected a value in [0, 1], got {v}")
        if v is not None:
            attribution[key] = Value(v)
    rc = _dict(row.get("ranking_cost"), src, f"{where}.ranking_cost")
    wall_s = _num(rc.get("wall_s"), src, f"{where}.ranking_cost.wall_s")
    flops = _num(rc.get("flops"), src, f"{where}.ranking_cost.flops")
    cost_note = _str(rc.get("note"), src, f"{where}.ranking_cost.note")
    results = _dict(row.get("results"), src, f"{where}.results", required=True)
    content = json.dumps(row, sort_keys=True, allow_nan=True).encode("utf-8")
    try:
        e = entry_from_results(results, src, run_name=src, content=content)
    except InputError as exc:
        raise InputError(src, f"{where}.results" + (f".{exc.field}" if exc.field else ""), exc.reason) from None
    if e.profile != profile:
        raise InputError(src, f"{where}.results.profile", f"{e.profile!r} differs from the bundle's {profile!r}")
    digest = hashlib.sha256(content).hexdigest()
    e.id = f"refgrid-{_safe_id_part(profile)}-{digest[:16]}"
    e.origin, e.role = "reference", role
    e.attribution = attribution
    e.samples = []
    if role in ("m0", "m1"):
        e.name = {"m0": "M0 (SFT reference)", "m1": "M1 (DPO reference)"}[role]
        e.submission_type = "reference"
    else:
        label = GRID_METHOD_LABELS[method or "oracle"]
        if method == "random" and seed is not None:
            label += f" (seed {seed})"
        e.name = f"{label}, {action} top {k}"
        e.submission_type = "oracle (upper bound)" if role == "oracle" else f"data: {action} top {k}"
    if wall_s is not None or flops is not None:
        parts = ([f"{wall_s:.0f} s"] if wall_s is not None else []) + ([f"{flops:.2g} FLOPs"] if flops else [])
        ranking_note = ("ranking: " + ", ".join(parts + ([cost_note] if cost_note else []))
                        + (f" ({grid['machine']})" if grid.get("machine") else ""))
        e.cost = {**e.cost, "wall_s": wall_s, "flops": flops,
                  "note": "; ".join(n for n in (e.cost.get("note"), ranking_note) if n)}
    e.notes = [note] + ([ORACLE_NOTE] if role == "oracle" else [])
    e.parameters = {**e.parameters, "method": method or ("oracle" if role == "oracle" else None)}
    e.details["reference_grid"] = {**grid, "role": role, "method": method, "ranking": ranking, "k": k,
                                   "action": action, "seed": seed, "precision_at_k": _plain(row.get("precision_at_k")),
                                   "auroc": _plain(row.get("auroc")), "ranking_cost": _plain(rc or None)}
    e.source = src
    order = {"m0": 0, "m1": 1, "oracle": 2, "method": 3}[role]
    e.sort_key = f"{order}\x00{method or ''}\x00{action or ''}\x00{k or 0:09d}\x00{seed or 0:04d}\x00{digest}"
    return e


# ------------------------------------------------------------------------------------------- collecting
def run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories under the given paths: a run dir itself, or any folder below holding results.json."""
    found: set[Path] = set()
    for p in paths:
        p = Path(p)
        if (p / "results.json").exists() or not p.is_dir():
            found.add(p)
            continue
        found.update(r.parent for r in p.rglob("results.json"))
    return sorted(found, key=lambda q: (q.name, str(q)))


def collect(paths: Iterable[str | Path], *, reported: bool = True,
            reference: bool | str | Path = True) -> Collection:
    """Every loadable run under `paths` plus reference rows; the rest is listed in `skipped`, never fatal.

    `reference`: True adds the reference grids shipped with the package (an absent one adds a line to `notes`, no
    rows), a path adds that bundle instead, False none. A malformed bundle is an InputError: it is ours (or one the
    user named), not a submission to skip. `reported` adds the paper's published olmo2-7b rows.
    """
    entries: list[Entry] = []
    skipped: list[Skipped] = []
    notes: list[str] = []
    bundles: list[str] = []
    ids: set[str] = set()
    for d in run_dirs(paths):
        try:
            e = load_run(d, samples=False)
        except InputError as exc:
            skipped.append(_skip(exc, d))
            continue
        except OSError as exc:
            skipped.append(Skipped(str(d), f"cannot read: {exc}"))
            continue
        try:
            e.samples = read_samples(d / "samples.jsonl", e.measured)
        except (InputError, OSError) as exc:  # the scores still stand; only the sample toggle is lost
            s = _skip(exc, d / "samples.jsonl")
            skipped.append(Skipped(s.path, f"{s.reason} (entry kept, without samples)"))
        if e.id in ids:
            skipped.append(Skipped(str(d), "duplicate of another run (identical results.json)"))
            continue
        ids.add(e.id)
        entries.append(e)
    grid: list[Entry] = []
    if reference is True:
        found, missing = shipped_reference_bundles()
        notes.extend(missing)
        for name, res in found:
            grid.extend(reference_bundle_entries(res, source_name=name, shipped=True))
            bundles.append(name)
    elif reference is not False:
        if not Path(reference).is_file():
            raise InputError(reference, None, "no such reference bundle")
        grid.extend(reference_bundle_entries(reference))
        bundles.append(str(reference))
    entries.extend(reference_entries(entries, held=grid))
    entries.extend(grid)
    if reported:
        entries.extend(reported_entries())
    return Collection(entries=entries, skipped=skipped, notes=notes, bundles=bundles)


def _metrics_key(metrics: Mapping[str, Value]) -> list[tuple[str, Any]]:
    return sorted((k, (v.value, v.low, v.high, v.n_prompts)) for k, v in metrics.items())


def summary_rows(entries: Iterable[Entry]) -> list[dict[str, Any]]:
    """One plain record per row (what `leaderboard build --json` lists), in a stable order."""
    return [{"id": e.id, "profile": e.profile, "name": e.name, "role": e.role or "submission", "origin": e.origin,
             "type": e.submission_type, "measure": e.measure, "source": e.source,
             "harmful_rate_distractor": e.metrics["harmful_rate_distractor"].value
             if "harmful_rate_distractor" in e.metrics else None}
            for e in sorted(entries, key=lambda e: (e.profile, e.measure, e.origin, e.role or "", e.name, e.id))]


def _skip(exc: Exception, where: Path) -> Skipped:
    if isinstance(exc, InputError):
        return Skipped(exc.source or str(where), f"{exc.field}: {exc.reason}" if exc.field else exc.reason)
    return Skipped(str(where), f"cannot read: {exc}")
