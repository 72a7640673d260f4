"""Judges: a registry of batch graders that turn (prompt, response) into a harmful score, label and raw output.

Importing this package registers every judge; each module is cheap to import (hf-classifier loads transformers only
when it first judges).
"""

from benchmark.judges import hf_classifier, refusal, rubric  # noqa: F401 - imported to register the judges
from benchmark.judges.base import (
    FAILURE_FLAG_SHARE,
    Judge,
    JudgeItem,
    Verdict,
    failure_summary,
    get_judge,
    judge_version,
    labels_as_floats,
    list_judges,
    ls_rows,
    parse_options,
    register_judge,
)
from prompts.refusal import is_refusal

__all__ = [
    "FAILURE_FLAG_SHARE",
    "Judge",
    "JudgeItem",
    "Verdict",
    "failure_summary",
    "get_judge",
    "is_refusal",
    "judge_version",
    "labels_as_floats",
    "list_judges",
    "ls_rows",
    "parse_options",
    "register_judge",
]
