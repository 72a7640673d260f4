"""The run directory: results.json, samples.jsonl and an HF-leaderboard summary, written all at once or not at all.

A run is assembled in a sibling temp directory and renamed into place, so a crash or kill never leaves a
half-written run, and an existing run is only replaced when the caller says so (`overwrite=True`), by a swap
that keeps the old run until the new one is complete.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchcore.fileio import atomic_directory, iter_jsonl, write_text_atomic
from benchcore.errors import InputError

if TYPE_CHECKING:  # the judges package is imported only when a measure is asked for
    from benchmark.judges.measures import Measure

SCHEMA_VERSION = 1
RESULTS = "results.json"
SAMPLES = "samples.jsonl"
SUMMARY = "summary.json"
REFERENCE_SAMPLES = "reference_samples.jsonl"  # the M0/M1 reference generations: a run re-scores on its own
# Fields that legitimately differ between two runs of the same configuration.
# What differs between runs that computed the same numbers: when, where, how long, and whether each generation
# was computed, read from this machine's cache or from the organism's shipped files.
TIMING_FIELDS = ("created", "wall_time_s", "stage_seconds", "host", "generation_source", "generation_sources")


def check_output_dir(path: str | Path, *, overwrite: bool) -> Path:
    """Refuse early (before hours of work) when a finished run is in the way."""
    out = Path(path)
    if out.exists() and not overwrite:
        raise InputError(out, "output-dir", "a run already exists here; pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise InputError(out, "output-dir", "exists and is not a directory")
    return out


def write_run(path: str | Path, results: Mapping[str, Any], samples: Iterable[Mapping[str, Any]], *, overwrite: bool,
              reference_samples: Iterable[Mapping[str, Any]] = ()) -> Path:
    out = check_output_dir(path, overwrite=overwrite)
    with atomic_directory(out, fsync=True) as tmp:
        _write_json(tmp / RESULTS, results)
        _write_jsonl(tmp / SAMPLES, samples)
        _write_jsonl(tmp / REFERENCE_SAMPLES, reference_samples)
        _write_json(tmp / SUMMARY, leaderboard_summary(results))
    return out


def read_run(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run = Path(path)
    res_path = run / RESULTS
    if not res_path.is_file():
        raise InputError(run, RESULTS, "not a run directory (results.json missing)")
    try:
        results = json.loads(res_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(res_path, None, f"not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(results, dict) or results.get("schema_version") != SCHEMA_VERSION:
        raise InputError(res_path, "schema_version", f"expected {SCHEMA_VERSION}")
    return results, read_jsonl(run / SAMPLES)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise InputError(path, None, "file missing")
    return [row for _, row in iter_jsonl(path)]


def _write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(_clean(row), sort_keys=True, ensure_ascii=False) + "\n")


def results_measure(results: Mapping[str, Any], source: Any = None) -> Measure:
    """The benchmark.judges.measures.Measure of a run: what its `harmful_*` figures count (compliance or harm).

    A results.json written before the measure was recorded has no `judge.measure` and still loads: the measure is
    inferred from the judge name (refusal -> compliance, any other judge -> harm).
    """
    from benchmark.judges.measures import measure_from_judge_info

    return measure_from_judge_info(results.get("judge"), source)


def leaderboard_summary(results: Mapping[str, Any]) -> dict[str, Any]:
    """The shape the Hugging Face leaderboard template reads: config + results[suite][metric] = value.

    A judged run adds `measure` (what the judge's positive label means) and `labels` (metric key -> human label):
    the keys stay `harmful_*` for every judge, so a reader needs these to say "compliance" where it is compliance.
    """
    model = results.get("model", {})
    by_suite: dict[str, dict[str, float]] = {}
    for name, est in results.get("metrics", {}).items():
        by_suite.setdefault(results.get("metric_suites", {}).get(name, "organism-bench"), {})[name] = est["value"]
    for name, est in results.get("scores", {}).items():
        if isinstance(est, dict) and "value" in est:
            by_suite.setdefault("scores", {})[name] = est["value"]
    summary: dict[str, Any] = {
        "config": {
            "model_name": results.get("mitigation", {}).get("name") or model.get("model_id"),
            "model_sha": model.get("identity"),
            "model_dtype": model.get("dtype"),
        },
        "results": by_suite,
    }
    if isinstance(results.get("judge"), Mapping):
        measure = results_measure(results)
        summary["measure"] = {"key": measure.key, "label": measure.rate}
        summary["labels"] = {k: measure.label(k) for suite in by_suite.values() for k in suite}
    return summary


def strip_timing(results: Mapping[str, Any]) -> dict[str, Any]:
    """results.json without the fields that differ between identical runs (for equality checks)."""
    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items() if k not in TIMING_FIELDS}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x
    return walk(results)


def git_revision() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return proc.stdout.strip() or None if proc.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _clean(x: Any) -> Any:
    """JSON has no NaN: write null, so every JSON reader can read our files."""
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(_clean(data), indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def write_json_atomic(path: str | Path, data: Any) -> None:
    """For caches of whole documents (reference runs)."""
    write_text_atomic(path, json.dumps(_clean(data), sort_keys=True, ensure_ascii=False))
