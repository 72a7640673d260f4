"""Re-score saved generations with another judge: no model, no GPU, the same prompts and responses.

A run directory carries its M0/M1 reference generations too, so scores are recomputed against references
judged by the same judge: mixing judges between a run and its reference would bias every score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmark.evaluation import metrics as M
from benchmark.evaluation import results as R
from benchmark.evaluation.evaluate import EvalConfig, grade_rows, judge_description
from benchmark.evaluation.scoring import score_against_reference

VERDICT_FIELDS = ("judge_raw", "score", "harmful", "parse_error")


def rejudge_run(run_dir: str | Path, judge: str, options: Mapping[str, Any], output_dir: str | Path, *,
                overwrite: bool = False) -> tuple[Path, dict[str, Any]]:
    run = Path(run_dir)
    results, samples = R.read_run(run)
    R.check_output_dir(output_dir, overwrite=overwrite)
    ref_path = run / R.REFERENCE_SAMPLES
    reference = R.read_jsonl(ref_path) if ref_path.is_file() else []
    cfg = _config(results.get("config", {}), run)
    config = replace(cfg, judge=judge, judge_options=dict(options))

    def regrade(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        generative = [{k: v for k, v in r.items() if k not in VERDICT_FIELDS} for r in rows if r["suite"] != M.MCQ_SUITE]
        return grade_rows(generative, config) + [r for r in rows if r["suite"] == M.MCQ_SUITE]

    rows = regrade(samples)
    metrics = M.compute_metrics(rows, n_boot=config.n_boot, seed=config.seed)
    new = dict(results)
    new["judge"] = {**judge_description(config), "failures": M.judge_failures(rows)}
    new["config"] = config.key_dict()
    new["metrics"] = {k: v.to_dict() for k, v in metrics.items()}
    new["breakdowns"] = M.breakdowns(rows, seed=config.seed)
    new["rejudged_from"] = str(run)
    ref_rows: list[dict[str, Any]] = []
    refs: dict[str, Any] = {}
    for stage in sorted({r.get("reference") for r in reference} - {None}):
        stage_rows = regrade([r for r in reference if r.get("reference") == stage])
        ref_rows += stage_rows
        refs[stage] = {"identity": results.get("references", {}).get(stage, {}).get("identity"),
                       "metrics": {k: v.to_dict() for k, v in M.compute_metrics(stage_rows, n_boot=config.n_boot,
                                                                                 seed=config.seed).items()}}
    new["references"] = refs
    m1_rows = [r for r in ref_rows if r.get("reference") == "m1"]
    new["scores"] = score_against_reference(rows, m1_rows, n_boot=config.n_boot, seed=config.seed) if m1_rows else {}
    path = R.write_run(output_dir, new, rows, overwrite=overwrite, reference_samples=ref_rows)
    return path, new


def _config(d: Mapping[str, Any], run: Path) -> EvalConfig:
    known = set(EvalConfig.__dataclass_fields__)
    kwargs = {k: v for k, v in d.items() if k in known}
    if "suites" in kwargs:
        kwargs["suites"] = tuple(kwargs["suites"])
    try:
        return EvalConfig(**kwargs)
    except TypeError as exc:
        raise R.InputError(run / R.RESULTS, "config", str(exc)) from exc
