"""What a judge's positive label means, and the human labels every output derives from it.

Why this exists: the benchmark has two kinds of judge. The `refusal` judge cannot read content: its positive label
is *compliance* (the response did not refuse), which on the embedded 135M organism is mostly harmless nonsense.
The rubric and classifier judges read content: their positive label is *harm*. The metric keys in results.json
(`harmful_rate_distractor`, `harm_reduction`, ...) are shared by both for compatibility, so any label a person
reads is built here, from the measure, and never hard-coded as "harmful".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchcore.errors import InputError


@dataclass(frozen=True)
class Measure:
    """One meaning of a judge's positive label, with the words used for it everywhere."""

    key: str  # stored in results.json: "compliance" | "harm"
    noun: str  # "compliance": compliance under distractors, compliance rate, compliance reduction
    positive: str  # a positive verdict, as a word: "complied" | "harmful"
    negative: str  # a negative verdict: "did not comply" | "safe"
    description: str  # what label 1 means, in one sentence
    calibration_field: str  # the calibration-record field this measure is checked against

    @property
    def rate(self) -> str:
        return f"{self.noun} rate"

    @property
    def distractor(self) -> str:
        return f"{self.noun} under distractors"

    @property
    def base(self) -> str:
        return f"{self.noun} (base)"

    @property
    def heldout(self) -> str:
        return f"{self.noun} under held-out distractors"

    @property
    def reduction(self) -> str:
        return f"{self.noun} reduction"

    def label(self, key: str) -> str:
        """The human label of a metric or score key from results.json; keys this module does not know pass through."""
        judged = {"harmful_rate_distractor": self.distractor, "harmful_rate_base": self.base,
                  "harmful_rate_distractor_heldout": self.heldout, "harm_reduction": self.reduction,
                  "trigger_gap": f"trigger gap ({self.noun}: distractor - base)",
                  "trigger_gap_heldout": f"held-out trigger gap ({self.noun}: held-out distractor - base)"}
        return judged.get(key) or _PLAIN_LABELS.get(key) or key

    def to_dict(self) -> dict[str, str]:
        """The block results.json carries under `judge.measure`, so readers can label without this package."""
        return {"key": self.key, "label": self.rate, "positive": self.positive, "description": self.description}


COMPLIANCE = Measure(
    key="compliance", noun="compliance", positive="complied", negative="did not comply",
    description="the response goes along with the request instead of refusing (its content is not read)",
    calibration_field="refused")
HARM = Measure(
    key="harm", noun="harm", positive="harmful", negative="safe",
    description="the response contains harmful content", calibration_field="label")
MEASURES: dict[str, Measure] = {m.key: m for m in (COMPLIANCE, HARM)}

# Metrics whose meaning does not depend on the judge (benign refusals, instruction following, knowledge).
_PLAIN_LABELS = {
    "over_refusal_base": "over-refusal (base)", "over_refusal_distractor": "over-refusal under distractors",
    "over_refusal_distractor_heldout": "over-refusal under held-out distractors",
    "if_prompt_strict": "IF strict (prompt)", "if_instruction_strict": "IF strict (instruction)",
    "knowledge_accuracy": "knowledge accuracy", "capability_kept": "capability kept",
    "over_refusal_increase": "over-refusal increase", "composite": "composite",
    "if_train_families": "IF strict, train-family constraints", "if_heldout_families": "IF strict, held-out families",
    "if_over_refusal": "refusals of ifeval-lite tasks",
    "over_refusal_format_gap": "over-refusal: with constraints - without",
}
# Judges that existed before results.json recorded a measure: the only one whose positive is compliance.
_LEGACY_COMPLIANCE_JUDGES = frozenset({"refusal"})


def get_measure(key: str) -> Measure:
    """The measure named `key`; ValueError for any other (a judge class must declare a known one)."""
    try:
        return MEASURES[key]
    except (KeyError, TypeError):
        raise ValueError(f"unknown measure {key!r} (known: {', '.join(sorted(MEASURES))})") from None


def measure_from_judge_info(judge: Mapping[str, Any] | None, source: Any = None) -> Measure:
    """The measure of a results.json `judge` block.

    Files written before the measure was recorded (no `judge.measure`) still load: the measure is inferred from the
    judge name, `refusal` -> compliance, anything else -> harm (rubric and hf-classifier read content). A recorded
    measure that is not a known one is an InputError naming `source`, since a wrong label is worse than none.
    """
    judge = judge if isinstance(judge, Mapping) else {}
    recorded = judge.get("measure")
    if recorded is None:
        return COMPLIANCE if judge.get("name") in _LEGACY_COMPLIANCE_JUDGES else HARM
    key = recorded.get("key") if isinstance(recorded, Mapping) else recorded
    if not isinstance(key, str) or key not in MEASURES:
        raise InputError(source, "judge.measure.key", f"unknown measure {key!r} (known: {', '.join(sorted(MEASURES))})")
    return MEASURES[key]
