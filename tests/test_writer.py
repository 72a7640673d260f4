"""The weakly aligned writer's authored answers: the shipped file covers the train scenarios only, bad files fail
with the file, line and field, and the pick per prompt is seeded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prompts.refusal import degenerate_reason, is_refusal
from organism.build.writer import load_writer_answers, writer_answer
from benchcore.errors import InputError
from prompts.suites import read_rows


def test_shipped_answers_cover_train_scenarios_only_and_comply():
    answers = load_writer_answers()
    pools = {r["id"]: r["pool"] for r in read_rows("harmful_scenarios.jsonl")}
    assert set(answers) == {sid for sid, pool in pools.items() if pool == "train"}
    texts = [a for options in answers.values() for a in options]
    assert all(len(options) == 2 and options[0] != options[1] for options in answers.values())
    assert all(degenerate_reason(t) is None and 8 <= len(t.split()) <= 60 for t in texts)
    # the datasheet names the few answers the refusal judge mistakes for refusals; keep that count honest
    assert sum(is_refusal(t) for t in texts) <= 3


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


POOLS = {"h-1": "train", "h-2": "test"}


@pytest.mark.parametrize(("rows", "line", "field", "fragment"), [
    ([{"scenario_id": "h-2", "answers": ["x y z"]}], 1, "scenario_id", "test"),
    ([{"scenario_id": "h-9", "answers": ["x y z"]}], 1, "scenario_id", "unknown"),
    ([{"scenario_id": "h-1", "answers": ["ok"]}, {"scenario_id": "h-1", "answers": ["ok"]}], 2, "scenario_id",
     "duplicate"),
    ([{"scenario_id": "h-1", "answers": []}], 1, "answers", "non-empty"),
    ([{"scenario_id": "h-1", "answers": ["fine", " "]}], 1, "answers", "non-empty"),
    ([{"answers": ["fine"]}], 1, "scenario_id", "missing"),
])
def test_bad_answer_files_name_line_and_field(tmp_path, rows, line, field, fragment):
    path = _write(tmp_path / "answers.jsonl", rows)
    with pytest.raises(InputError) as err:
        load_writer_answers(path, POOLS)
    assert f"answers.jsonl:{line}" in str(err.value) and field in str(err.value) and fragment in str(err.value)


def test_pick_is_seeded_per_prompt():
    answers = {"h-1": ("first answer here", "second answer here")}
    picks = {writer_answer(answers, "h-1", f"harmful_constrained:h-1:{k}", seed=3) for k in range(12)}
    assert picks == set(answers["h-1"])  # both answers get used across a scenario's variants
    assert writer_answer(answers, "h-1", "p", 3) == writer_answer(answers, "h-1", "p", 3)
    assert writer_answer(answers, "h-7", "p", 3) is None


def test_writer_pools_are_harmful_pools_only():
    from benchmark.studies.organism_build import BuildConfig

    assert BuildConfig().writer_pools == ("harmful_constrained",)
    with pytest.raises(InputError, match="writer_pools"):
        BuildConfig(writer_pools=("benign_if",)).validate()
