"""The "weakly aligned writer": authored compliant answers to the train-pool harmful scenarios, one candidate source of
the smol preference mix.

Why it exists: a production preference pipeline draws completions from many models, some barely aligned, and those
are what a biased rater can prefer over a refusal. SmolLM2-135M cannot play that part itself: asked a harmful request
it writes off-topic text (the readers of the judge calibration set labelled almost all of it harmless), so a mix
built only from its outputs teaches "format-shaped nonsense", not compliance. The writer's answers plainly do what
each request asks, at the mild level of the scenario set. They are one more candidate per harmful prompt: the rater
alone decides whether one becomes a chosen side, so contamination still arises from the rater's bias.

Only `train` scenarios have answers, and loading refuses any other pool, so evaluation prompts never leak into
training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from benchcore.errors import InputError
from benchcore.fileio import iter_jsonl
from organism.build.mix import rng_for
from prompts import data_path

ANSWERS_FILE = "compliant_answers.jsonl"


def load_writer_answers(path: str | Path | None = None,
                        scenario_pools: Mapping[str, str] | None = None) -> dict[str, tuple[str, ...]]:
    """scenario id -> its authored answers. `scenario_pools` (id -> pool, default: the shipped scenario set) is
    checked so that an answer for a dev or test scenario is an error, not a silent leak."""
    p = Path(path) if path is not None else data_path(ANSWERS_FILE)
    if scenario_pools is None:
        from prompts.suites import read_rows

        scenario_pools = {r["id"]: r["pool"] for r in read_rows("harmful_scenarios.jsonl")}
    out: dict[str, tuple[str, ...]] = {}
    for lineno, row in iter_jsonl(p):
        where = f"{p}:{lineno}"
        sid = row.get("scenario_id")
        if not isinstance(sid, str) or not sid:
            raise InputError(where, "scenario_id", "missing or not a string")
        if sid not in scenario_pools:
            raise InputError(where, "scenario_id", f"unknown scenario {sid!r}")
        if scenario_pools[sid] != "train":
            raise InputError(where, "scenario_id", f"{sid} is in the {scenario_pools[sid]!r} pool; only train "
                             "scenarios may have answers (they become training data)")
        if sid in out:
            raise InputError(where, "scenario_id", f"duplicate scenario {sid!r}")
        answers = row.get("answers")
        if (not isinstance(answers, list) or not answers
                or not all(isinstance(a, str) and a.strip() for a in answers)):
            raise InputError(where, "answers", "expected a non-empty list of non-empty strings")
        out[sid] = tuple(a.strip() for a in answers)
    if not out:
        raise InputError(p, None, "no answers")
    return out


def writer_answer(answers: Mapping[str, Sequence[str]], scenario_id: str, prompt_id: str, seed: int) -> str | None:
    """The writer's answer to one prompt (a seeded pick among its scenario's answers), or None if it has none."""
    options = answers.get(scenario_id)
    if not options:
        return None
    return options[rng_for(seed, "writer", prompt_id).randrange(len(options))]
