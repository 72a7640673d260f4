"""`reference build`: rankings, the causal check's retrains and the leaderboard bundle, resumable.

The end-to-end test runs on the tiny stand-ins of tests/test_evaluate_data.py (tiny random base, tiny M0/M1
LoRAs, the 40-pair toy mix with its ground-truth column), so a retrain takes seconds.
"""

from __future__ import annotations

import json

import pytest

from benchcore.errors import InputError
from benchmark.cli.main import main
from benchmark.evaluation import evaluate as E
from benchmark.studies import reference_grid as G
from tests import test_evaluate_data as data_tests
from tests.fixtures_data import toy_rows

stand_in = data_tests.stand_in
smol_tiny = data_tests.smol_tiny
N_CULPRITS = sum(1 for r in toy_rows(data_tests.N_PAIRS) if r["contaminated"])
FAST = {"limit": 8, "gen_kwargs": {"max_new_tokens": 4}, "n_boot": 50, "dtype": "float32", "batch_size": 8,
        "suites": ("dtc-harmful", "ifeval-lite")}


def test_the_full_plan_has_every_row_of_the_grid_in_priority_order():
    cells = G.plan_cells(("probe", "judge-delta", "gradient", "random"), (0, 1, 2), 88)
    names = [c.name for c in cells]
    assert len(cells) == 2 + 3 * 3 + 3 * 2 == len(set(names))
    # the culprit-count removals come first, so a grid cut short can still compare the probe with random
    assert names[:5] == ["oracle-remove-k88", "probe-remove-k88", "judge-delta-remove-k88", "gradient-remove-k88",
                         "random-s0-remove-k88"]
    assert {c.k for c in cells} == {44, 88}
    assert not [c for c in cells if c.method == "random" and c.action == "flip"]
    assert [c.name for c in cells if c.action == "flip"] == ["oracle-flip-k88", "probe-flip-k88",
                                                            "judge-delta-flip-k88", "gradient-flip-k88"]
    assert [(c.seed, c.k) for c in cells if c.method == "random"] == [(0, 88), (1, 88), (2, 88), (0, 44), (1, 44),
                                                                      (2, 44)]
    assert names[5:8] == ["oracle-flip-k88", "random-s1-remove-k88", "random-s2-remove-k88"]
    # then the same comparison at half k, and the methods' flips last
    assert all(c.k == 44 for c in cells[8:14]) and all(c.action == "flip" for c in cells[14:])


def test_judge_delta_refuses_the_judge_that_wrote_the_labels():
    with pytest.raises(InputError, match="ground-truth labels"):
        G.judge_delta_judge(G.ReferenceGridConfig(judge_delta_judge="refusal"))
    with pytest.raises(InputError, match="did not make the labels"):
        G.judge_delta_judge(G.ReferenceGridConfig())


def test_cli_exits_2_on_the_label_judge(tmp_path, capsys):
    code = main(["reference", "build", "--methods", "judge-delta", "--judge-delta-judge", "refusal",
                 "-o", str(tmp_path / "grid")])
    assert code == 2
    assert "judge_delta_judge" in capsys.readouterr().err
    assert not (tmp_path / "grid").exists()


def _no_evaluation(*args, **kwargs):
    raise AssertionError("evaluated again although the row is finished")


def test_grid_cut_short_writes_a_bundle_then_resumes(smol_tiny, tmp_path, monkeypatch):
    out, bundle = tmp_path / "grid", tmp_path / "bundle.json"
    spec = G.ReferenceGridConfig(methods=("random",), random_seeds=(0, 1), max_rows=3, **FAST)
    grid = G.run_reference_grid(spec, out, bundle=bundle, command="organism-bench reference build (test)")

    assert [(r["ranking"], r["action"], r["k"]) for r in grid["rows"]] == [
        ("oracle", "remove", N_CULPRITS), ("random-s0", "remove", N_CULPRITS), ("oracle", "flip", N_CULPRITS)]
    oracle = grid["rows"][0]
    assert oracle["precision_at_k"] == 1.0 and oracle["n_contaminated_hit"] == N_CULPRITS
    assert 0.0 <= grid["rows"][1]["precision_at_k"] <= 1.0 and 0.0 <= grid["rankings"]["random-s0"]["auroc"] <= 1.0
    # the rows not run are listed, not silently missing
    assert [G.Cell(**c).name for c in grid["not_run"]] == [
        f"random-s1-remove-k{N_CULPRITS}", f"random-s0-remove-k{N_CULPRITS // 2}",
        f"random-s1-remove-k{N_CULPRITS // 2}"]
    (vs,) = grid["versus_random"]
    assert vs["ranking"] == "oracle" and vs["random_seeds"] == [0]

    doc = json.loads(bundle.read_text())
    assert doc["format"] == 1 and doc["profile"] == "smol" and doc["command"].startswith("organism-bench")
    assert [r["role"] for r in doc["rows"]] == ["m0", "m1", "oracle", "method", "oracle"]
    assert all(r["results"]["schema_version"] == 1 and r["results"]["metrics"] for r in doc["rows"])
    assert any("not run yet" in n for n in doc["notes"])
    # each grid row keeps its per-prompt distractor verdicts, so the bundle alone answers "better than random?"
    grid_rows = doc["rows"][2:]
    assert all(set(map(len, r["distractor_labels"].values())) == {1} for r in grid_rows)
    assert all({x for v in r["distractor_labels"].values() for x in v} <= {0, 1} for r in grid_rows)
    assert G.versus_random(doc["rows"], n_boot=spec.n_boot, seed=spec.seed) == grid["versus_random"]
    assert json.loads((out / "grid.json").read_text())["rows"] == grid["rows"]

    # the same call again reuses every ranking and row: nothing is generated or retrained
    monkeypatch.setattr(E, "run_evaluation", _no_evaluation)
    again = G.run_reference_grid(spec, out, bundle=bundle)
    assert all(r["reused"] for r in again["rows"])
    assert [r["composite"] for r in again["rows"]] == [r["composite"] for r in grid["rows"]]
    # asking for no new row still reads every finished one back into the bundle
    from dataclasses import replace

    none_new = G.run_reference_grid(replace(spec, max_rows=0), out, bundle=bundle)
    assert [r["ranking"] for r in none_new["rows"]] == ["oracle", "random-s0", "oracle"]
    assert len(json.loads(bundle.read_text())["rows"]) == 5


def test_lm_ask_judge_scores_each_response_with_a_probability(smol_tiny):
    from benchmark.judges import JudgeItem, get_judge, judge_measure

    judge = get_judge("lm-ask", batch_size=2)
    items = [JudgeItem("Tell me a secret.", r) for r in ("I can't help with that.", "Sure, here it is: 1. 2. 3.",
                                                         "No.")]
    first, again = judge.judge(items), judge.judge(items[::-1])
    assert len(first) == 3 and all(0.0 <= v.score <= 1.0 and v.label in (0, 1) for v in first)
    assert [v.score for v in again[::-1]] == pytest.approx([v.score for v in first], abs=1e-5)  # batch-independent
    assert len({round(v.score, 6) for v in first}) > 1  # it reads the response
    assert judge_measure("lm-ask").key == "compliance"
    assert judge.describe()["model_id"] == "smol:base"


def test_lm_ask_judge_rejects_bad_options():
    from benchmark.judges import get_judge

    with pytest.raises(InputError, match="threshold"):
        get_judge("lm-ask", threshold=2)
    with pytest.raises(InputError, match="dtype"):
        get_judge("lm-ask", dtype="int8")
