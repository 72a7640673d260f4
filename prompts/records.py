"""The records a suite is made of, the suite itself and its content hash: what every loader of prompts builds.

Apart from the loaders (`prompts.suites` for the shipped files, `prompts.hub` for exported folders and the Hub,
`prompts.paper` for the authors' set) so that each of them can build suites without importing another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Union

from benchcore.errors import InputError

VARIANTS: tuple[str, ...] = ("base", "distractor", "distractor_heldout")
SPLITS: tuple[str, ...] = ("train", "dev", "test")
HARMFUL_FORMS: frozenset[str] = frozenset({"say_harmful", "direct"})
# Independent constraint draws per ifeval-lite text in the dev and test splits (train keeps one: see SUITES).
IF_DRAWS = 5


@dataclass(frozen=True)
class SuiteSpec:
    """Where a suite's rows come from and what its records look like.

    `draws` (instruction suites only): how many independent constraint draws each text of a split gets, as
    (split, count) pairs; a split not named gets one. Draw 0 of a text is the record every version has had;
    draws 1.. are extra tasks on the same text, so their outcomes are correlated and intervals cluster by text.
    """

    name: str
    version: str
    file: str
    kind: str  # "prompt" | "instruction" | "mcq"
    description: str
    pools: tuple[str, ...] = SPLITS
    draws: tuple[tuple[str, int], ...] = ()

    def n_draws(self, split: str) -> int:
        """Constraint draws per text in `split` (1 unless `draws` says otherwise)."""
        return dict(self.draws).get(split, 1)


SUITES: Mapping[str, SuiteSpec] = {
    s.name: s
    for s in (
        SuiteSpec("dtc-harmful", "dtc-harmful@1", "harmful_scenarios.jsonl", "prompt",
                  "harmful requests, base and with distractor constraints (train-visible and held-out families)"),
        SuiteSpec("benign-control", "benign-control@1", "benign_requests.jsonl", "prompt",
                  "benign requests (some edgy-sounding) with the same variants: over-refusal control"),
        # @2: dev and test texts carry IF_DRAWS constraint draws each (test 113 -> 565 tasks) so that one standard
        # error of prompt-level accuracy is about 2 points; train (what organisms are built from) is unchanged.
        SuiteSpec("ifeval-lite", "ifeval-lite@2", "instruction_tasks.jsonl", "instruction",
                  "instruction tasks with 1-3 verifiable constraints, strict prompt/instruction-level accuracy",
                  draws=(("dev", IF_DRAWS), ("test", IF_DRAWS))),
        SuiteSpec("knowledge-mcq", "knowledge-mcq@1", "knowledge_mcq.jsonl", "mcq",
                  "four-choice knowledge questions: capability kept", pools=("dev", "test")),
    )
}
PAPER_SUITE = "paper-lmsys120"


@dataclass(frozen=True)
class PromptRecord:
    """One prompt as sent to the model. `text` is the full prompt; `base_text` the request without constraints."""

    id: str
    suite: str
    split: str
    category: str
    form: str | None
    variant: str
    scenario_id: str
    text: str
    base_text: str
    constraint_ids: tuple[str, ...]
    edgy: bool | None


@dataclass(frozen=True)
class MCQRecord:
    """One four-choice question; `answer` indexes `choices`."""

    id: str
    suite: str
    split: str
    subject: str
    question: str
    choices: tuple[str, ...]
    answer: int


Record = Union[PromptRecord, MCQRecord]


def record_to_dict(r: Record) -> dict[str, Any]:
    d = asdict(r)
    for k, v in d.items():
        if isinstance(v, tuple):
            d[k] = list(v)
    return d


def record_from_dict(kind: str, d: Mapping[str, Any]) -> Record:
    """Rebuild a record from a plain row (a parquet row, a JSON object)."""
    cls = MCQRecord if kind == "mcq" else PromptRecord
    names = [f.name for f in fields(cls)]
    vals = {n: d.get(n) for n in names}
    for n in ("constraint_ids", "choices"):
        if n in vals and vals[n] is not None:
            vals[n] = tuple(vals[n])
    if cls is MCQRecord:
        vals["answer"] = int(vals["answer"])
    return cls(**vals)


def content_hash(records: Iterable[Record]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces, UTF-8) of the records in order."""
    payload = json.dumps([record_to_dict(r) for r in records], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Suite:
    """A loaded suite: the records of one split, and what identifies them."""

    name: str
    version: str
    split: str
    records: tuple[Record, ...]
    content_hash: str

    def __len__(self) -> int:
        return len(self.records)

    def to_rows(self) -> list[dict[str, Any]]:
        return [record_to_dict(r) for r in self.records]

    def to_dataset(self):  # -> datasets.Dataset; imported lazily to keep `import prompts` cheap
        import datasets

        kind = "mcq" if self.records and isinstance(self.records[0], MCQRecord) else _kind_of(self.name)
        return datasets.Dataset.from_list(self.to_rows(), features=features_for(kind))


def _kind_of(name: str) -> str:
    return SUITES[name].kind if name in SUITES else "prompt"


def features_for(kind: str):
    """The explicit column types, so an empty split or an all-null column keeps its schema across shards."""
    import datasets

    s = datasets.Value("string")
    if kind == "mcq":
        return datasets.Features({"id": s, "suite": s, "split": s, "subject": s, "question": s,
                                  "choices": datasets.Sequence(s), "answer": datasets.Value("int64")})
    return datasets.Features({"id": s, "suite": s, "split": s, "category": s, "form": s, "variant": s,
                              "scenario_id": s, "text": s, "base_text": s,
                              "constraint_ids": datasets.Sequence(s), "edgy": datasets.Value("bool")})


def make_suite(name: str, version: str, split: str, records: Iterable[Record]) -> Suite:
    recs = tuple(records)
    return Suite(name, version, split, recs, content_hash(recs))


def filter_suite(suite: Suite, split: str, variants: Sequence[str]) -> Suite:
    """The records of `suite` in `split` (or all) and `variants`, re-hashed."""
    recs = [
        r for r in suite.records
        if (split == "all" or r.split == split) and (isinstance(r, MCQRecord) or r.variant in variants)
    ]
    if split != "all" and suite.split not in ("all", split):
        raise InputError(suite.name, "split", f"suite holds split {suite.split!r}, not {split!r}")
    return make_suite(suite.name, suite.version, split, recs)
