"""Hand-labelled responses and the agreement of a judge with them (accuracy, Cohen's kappa, precision, recall).

Why: a harmful rate is only as good as its judge, so every judge is checked against responses a person read and
labelled, and the agreement is published next to the rates (the paper reported 89.8% / kappa 0.796 for its judge).

File format (JSONL, one object a line):
  {"id": str, "prompt": str, "response": str, "label": 1 | 0, "variant": str | null, "source": str,
   "labeller": str, "note": str (optional)}
label 1 = the response complied with the harmful request and is harmful; 0 = refusal, safe, or harmless nonsense.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompts import data_path
from benchmark.judges.base import JudgeItem, Verdict
from benchcore.errors import InputError
from benchcore.fileio import iter_jsonl

SHIPPED = "judge_calibration.jsonl"
SEED = "judge_calibration_seed.jsonl"
_REQUIRED = {"id": str, "prompt": str, "response": str, "label": int, "source": str, "labeller": str}
_OPTIONAL = {"variant": (str, type(None)), "note": (str, type(None)), "category": (str, type(None))}


@dataclass(frozen=True)
class CalibrationItem:
    id: str
    prompt: str
    response: str
    label: int
    variant: str | None
    source: str
    labeller: str
    note: str | None = None
    category: str | None = None

    def as_judge_item(self) -> JudgeItem:
        return JudgeItem(prompt=self.prompt, response=self.response, variant=self.variant,
                         category=self.category, id=self.id)


def default_calibration_path() -> Path:
    """The shipped calibration set if present, else the seed set."""
    shipped = data_path(SHIPPED)
    return shipped if shipped.is_file() else data_path(SEED)


def load_calibration(path: str | Path) -> list[CalibrationItem]:
    """Read and validate a calibration file; InputError names the line and the field."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, None, "calibration file not found")
    items: list[CalibrationItem] = []
    seen: set[str] = set()
    for lineno, obj in iter_jsonl(p):
        src = f"{p}:{lineno}"
        for field, typ in _REQUIRED.items():
            if field not in obj:
                raise InputError(src, field, "missing")
            value = obj[field]
            if typ is int:
                if isinstance(value, bool) or value not in (0, 1):
                    raise InputError(src, field, f"must be 1 (harmful/complied) or 0 (not), got {value!r}")
            elif not isinstance(value, typ) or (typ is str and field != "response" and not value.strip()):
                raise InputError(src, field, f"must be a non-empty {typ.__name__}")
        for field, types in _OPTIONAL.items():
            if field in obj and not isinstance(obj[field], types):
                raise InputError(src, field, "must be a string or null")
        unknown = set(obj) - set(_REQUIRED) - set(_OPTIONAL)
        if unknown:
            raise InputError(src, sorted(unknown)[0], "unknown field")
        if obj["id"] in seen:
            raise InputError(src, "id", f"duplicate id {obj['id']!r}")
        seen.add(obj["id"])
        items.append(CalibrationItem(
            id=obj["id"], prompt=obj["prompt"], response=obj["response"], label=int(obj["label"]),
            variant=obj.get("variant"), source=obj["source"], labeller=obj["labeller"], note=obj.get("note"),
            category=obj.get("category")))
    if not items:
        raise InputError(p, None, "no calibration items")
    return items


def agreement(verdicts: Sequence[Verdict], labels: Sequence[int]) -> dict:
    """Judge vs hand labels. Failures are left out of the four measures and counted in n_failed.

    cohen_kappa = (p_o - p_e) / (1 - p_e), p_e from both raters' marginals; NaN when p_e == 1 (one class only).
    Precision and recall treat "harmful" as the positive class; NaN when undefined (no predicted / true positives).
    """
    if len(verdicts) != len(labels):
        raise ValueError(f"{len(verdicts)} verdicts but {len(labels)} labels")
    tp = fp = tn = fn = failed = 0
    for v, y in zip(verdicts, labels):
        if v.failed:
            failed += 1
            continue
        if v.label == 1:
            tp += y == 1
            fp += y == 0
        else:
            tn += y == 0
            fn += y == 1
    m = tp + fp + tn + fn
    nan = math.nan
    accuracy = (tp + tn) / m if m else nan
    if m:
        p_e = ((tp + fp) / m) * ((tp + fn) / m) + ((tn + fn) / m) * ((tn + fp) / m)
        kappa = (accuracy - p_e) / (1 - p_e) if p_e < 1 else nan
    else:
        kappa = nan
    return {
        "accuracy": accuracy,
        "cohen_kappa": kappa,
        "precision": tp / (tp + fp) if tp + fp else nan,
        "recall": tp / (tp + fn) if tp + fn else nan,
        "n": len(labels),
        "n_failed": failed,
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
    }


def check_judge(judge: Any, path: str | Path | None = None) -> dict:
    """Run a judge on a calibration set (default: the shipped one) and measure its agreement with the labels."""
    from benchmark.judges import failure_summary

    path = path or default_calibration_path()
    items = load_calibration(path)
    verdicts = judge.judge([it.as_judge_item() for it in items])
    disagreements = [
        {"id": it.id, "label": it.label, "judge_label": v.label, "raw": v.raw, "parse_error": v.parse_error}
        for it, v in zip(items, verdicts) if v.label != it.label
    ]
    return {
        "judge": judge.describe(),
        "file": str(path),
        "agreement": agreement(verdicts, [it.label for it in items]),
        "failures": failure_summary(verdicts),
        "disagreements": disagreements,
    }
