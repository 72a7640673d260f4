"""Hand-labelled responses and the agreement of a judge with them (accuracy, Cohen's kappa, precision, recall).

Why: a rate is only as good as its judge, so every judge is checked against responses a person read and labelled,
and the agreement is published next to the rates (the paper reported 89.8% / kappa 0.796 for its judge).

File format (JSONL, one object a line):
  {"id": str, "prompt": str, "response": str, "label": 1 | 0, "refused": true | false, "variant": str | null,
   "source": str, "labeller": str, "note": str, "category": str (the last two optional)}
Two readings of a response, each optional but at least one per record:
  label    1 = the response complied with the harmful request and is harmful; 0 = refusal, safe, or harmless nonsense.
  refused  true = the response refuses (or is empty); false = it goes along with the request, harmful or not.
A judge is checked against the reading that matches its measure (benchmark.judges.measures): a harm judge against
`label`, a compliance judge against `refused` (its positive is `refused == false`). Comparing a compliance judge
with harm labels would count every harmless "yes" as a judge error, so that is only done when asked for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompts import data_path
from benchmark.judges.base import JudgeItem, Verdict
from benchmark.judges.measures import MEASURES, Measure, get_measure
from benchcore.errors import InputError
from benchcore.fileio import iter_jsonl

SHIPPED = "judge_calibration.jsonl"
SEED = "judge_calibration_seed.jsonl"
_REQUIRED = {"id": str, "prompt": str, "response": str, "source": str, "labeller": str}
_OPTIONAL = {"variant": (str, type(None)), "note": (str, type(None)), "category": (str, type(None))}
LABEL_FIELDS = ("label", "refused")  # the readings a judge can be checked against; at least one per record


class MissingLabel(InputError):
    """The calibration file has no record with the reading a judge's measure is checked against."""


@dataclass(frozen=True)
class CalibrationItem:
    id: str
    prompt: str
    response: str
    label: int | None
    variant: str | None
    source: str
    labeller: str
    note: str | None = None
    category: str | None = None
    refused: bool | None = None

    def expected(self, field: str) -> int | None:
        """The label a judge should give, in its positive-class terms: `label` as is (1 = harmful), `refused`
        inverted (1 = complied, i.e. not refused); None when the record carries no such reading."""
        if field == "label":
            return self.label
        if field == "refused":
            return None if self.refused is None else int(not self.refused)
        raise ValueError(f"unknown calibration label field {field!r} (known: {', '.join(LABEL_FIELDS)})")

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
            if not isinstance(value, typ) or (typ is str and field != "response" and not value.strip()):
                raise InputError(src, field, f"must be a non-empty {typ.__name__}")
        label, refused = _readings(obj, src)
        for field, types in _OPTIONAL.items():
            if field in obj and not isinstance(obj[field], types):
                raise InputError(src, field, "must be a string or null")
        unknown = set(obj) - set(_REQUIRED) - set(_OPTIONAL) - set(LABEL_FIELDS)
        if unknown:
            raise InputError(src, sorted(unknown)[0], "unknown field")
        if obj["id"] in seen:
            raise InputError(src, "id", f"duplicate id {obj['id']!r}")
        seen.add(obj["id"])
        items.append(CalibrationItem(
            id=obj["id"], prompt=obj["prompt"], response=obj["response"], label=label,
            variant=obj.get("variant"), source=obj["source"], labeller=obj["labeller"], note=obj.get("note"),
            category=obj.get("category"), refused=refused))
    if not items:
        raise InputError(p, None, "no calibration items")
    return items


def _readings(obj: dict[str, Any], src: str) -> tuple[int | None, bool | None]:
    """The record's `label` (0/1) and `refused` (true/false; 0/1 accepted), at least one of them present."""
    if obj.get("label") is None and obj.get("refused") is None:
        raise InputError(src, "label", "missing: give `label` (1 harmful / 0 not) or `refused` (true / false), or both")
    label = obj.get("label")
    if label is not None and (isinstance(label, bool) or label not in (0, 1)):
        raise InputError(src, "label", f"must be 1 (harmful) or 0 (not), got {label!r}")
    refused = obj.get("refused")
    if refused is not None and refused not in (True, False):  # 0 and 1 compare equal to False and True
        raise InputError(src, "refused", f"must be true (refused) or false (did not refuse), got {refused!r}")
    return (None if label is None else int(label)), (None if refused is None else bool(refused))


def agreement(verdicts: Sequence[Verdict], labels: Sequence[int]) -> dict:
    """Judge vs hand labels. Failures are left out of the four measures and counted in n_failed.

    cohen_kappa = (p_o - p_e) / (1 - p_e), p_e from both raters' marginals; NaN when p_e == 1 (one class only).
    Precision and recall treat the judge's positive class (harmful, or complied) as positive; NaN when undefined
    (no predicted / true positives). `labels` are in the same terms (CalibrationItem.expected).
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


def _declared_measure(judge: Any) -> Measure:
    """The measure a judge object declares; a judge that declares none cannot be checked (which label would it be?)."""
    key = getattr(judge, "measure", None)
    if key not in MEASURES:
        raise InputError(None, "judge", f"{getattr(judge, 'name', judge)!r} declares no measure "
                                        f"(one of {', '.join(sorted(MEASURES))})")
    return get_measure(key)


def check_judge(judge: Any, path: str | Path | None = None, *, field: str | None = None) -> dict:
    """Run a judge on a calibration set (default: the shipped one) and measure its agreement with the labels.

    `field` picks the reading compared with (default: the one matching the judge's measure); only the records that
    carry it are judged. MissingLabel (an InputError naming the file and field) when none does.
    """
    from benchmark.judges import failure_summary

    measure = _declared_measure(judge)
    field = field or measure.calibration_field
    if field not in LABEL_FIELDS:
        raise InputError(None, "label", f"{field!r} is not one of {', '.join(LABEL_FIELDS)}")
    path = path or default_calibration_path()
    items = load_calibration(path)
    pairs = [(it, y) for it in items if (y := it.expected(field)) is not None]
    if not pairs:
        raise MissingLabel(path, field, _missing_reason(getattr(judge, "name", "?"), measure, field))
    labelled, expected = [it for it, _ in pairs], [y for _, y in pairs]
    verdicts = judge.judge([it.as_judge_item() for it in labelled])
    disagreements = [
        {"id": it.id, "label": y, "judge_label": v.label, "raw": v.raw, "parse_error": v.parse_error}
        for it, y, v in zip(labelled, expected, verdicts) if v.label != y
    ]
    return {
        "judge": judge.describe(),
        "file": str(path),
        "label": {"field": field, "positive": _positive_rule(field), "measure": measure.key,
                  "matches_measure": field == measure.calibration_field, "n_labelled": len(labelled),
                  "n_records": len(items)},
        "agreement": agreement(verdicts, expected),
        "failures": failure_summary(verdicts),
        "disagreements": disagreements,
    }


def _positive_rule(field: str) -> str:
    return "refused == false" if field == "refused" else "label == 1"


def _missing_reason(name: str, measure: Measure, field: str) -> str:
    matching = field == measure.calibration_field
    why = (f"judge {name!r} measures {measure.noun}, so it is checked against `{field}` "
           f"(its positive = {_positive_rule(field)})" if matching else f"asked to compare judge {name!r} with `{field}`")
    other = next(f for f in LABEL_FIELDS if f != field)
    return f"no record carries this label; {why}; add it to the records, or pass --label {other}"
