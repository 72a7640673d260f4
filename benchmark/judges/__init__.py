"""Judges: a registry of batch graders that turn (prompt, response) into a score, label and raw output.

Each judge declares its measure: what its positive label means ("compliance" or "harm", see `measures`).

Importing this package registers every judge; each module is cheap to import (hf-classifier loads transformers only
when it first judges).
"""

from benchmark.judges import hf_classifier, lm_ask, refusal, rubric  # noqa: F401 - imported to register the judges
from benchmark.judges.base import (
    FAILURE_FLAG_SHARE,
    Judge,
    JudgeItem,
    Verdict,
    failure_summary,
    get_judge,
    judge_measure,
    judge_version,
    labels_as_floats,
    list_judges,
    ls_rows,
    parse_options,
    register_judge,
)
from benchmark.judges.measures import COMPLIANCE, HARM, MEASURES, Measure, get_measure, measure_from_judge_info
from prompts.refusal import is_refusal

__all__ = [
    "COMPLIANCE",
    "FAILURE_FLAG_SHARE",
    "HARM",
    "MEASURES",
    "Measure",
    "Judge",
    "JudgeItem",
    "Verdict",
    "failure_summary",
    "get_judge",
    "get_measure",
    "is_refusal",
    "judge_measure",
    "judge_version",
    "labels_as_floats",
    "list_judges",
    "ls_rows",
    "measure_from_judge_info",
    "parse_options",
    "register_judge",
]
