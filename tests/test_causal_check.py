"""`causal-check`: each ranking's top-k removed/flipped, DPO retrained from M0, harm and capability tabled.

Runs on the tiny stand-ins of tests/test_evaluate_data.py (a tiny random OLMo 2 as the smol base, tiny M0/M1
LoRAs and the 40-pair toy mix installed), with eight scenarios per suite and 4 new tokens, so a run takes seconds.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from benchmark.studies import causal_check as C
from benchmark.evaluation import evaluate as E
from benchmark.cli.main import main
from organism.training import dpo
from benchcore.errors import InputError
from organism.data.ranking import Ranking, read_ranking, write_ranking
from tests import test_evaluate_data as data_tests
from tests.fixtures_data import toy_rows

stand_in = data_tests.stand_in  # module-scoped: the tiny base, adapters and toy mix, built once here
smol_tiny = data_tests.smol_tiny  # points the smol profile at them, with a per-test cache

N_PAIRS = data_tests.N_PAIRS
TRUTH_IDS = sorted(r["id"] for r in toy_rows(N_PAIRS) if r["contaminated"])
FAST = {"limit": 8, "gen_kwargs": {"max_new_tokens": 4}, "n_boot": 50, "dtype": "float32", "batch_size": 8}


def _ranking(path: Path, method: str, first: list[str]) -> Path:
    """`first` on top (in that order), every other toy pair after them."""
    n = len(first)
    scores = {i: float(n - j) for j, i in enumerate(first)}
    scores.update({r["id"]: 0.0 for r in toy_rows(N_PAIRS) if r["id"] not in scores})
    return write_ranking(path, Ranking.from_scores(method, {}, scores))


def _no_training(*args, **kwargs):
    raise AssertionError("retrained although the adapter is cached")


def _no_evaluation(*args, **kwargs):
    raise AssertionError("evaluated again although the run is finished")


def test_one_method_one_k_remove_then_reuse(smol_tiny, tmp_path, monkeypatch, capsys):
    # 2 contaminated (toy-0001, toy-0005) and 2 clean pairs on top: precision at k=4 is 1/2
    probe = _ranking(tmp_path / "probe.jsonl", "probe", ["toy-0001", "toy-0002", "toy-0005", "toy-0000"])
    spec = C.CausalCheckConfig(profile="smol", rankings={"probe": probe}, ks=[4], actions=["remove"], **FAST)
    out = tmp_path / "check"
    result = C.run_causal_check(spec, out)

    assert len(result.rows) == 1
    row = result.rows[0]
    assert (row.method, row.k, row.action) == ("probe", 4, "remove")
    assert row.n_affected == 4 and row.n_contaminated_hit == 2 and row.precision_at_k == 0.5
    assert row.retrain_status == "trained" and not row.reused
    for est in (row.harmful_distractor, row.harmful_base):
        assert est is not None and est["ci_low"] <= est["value"] <= est["ci_high"]
    red = row.harm_reduction
    assert red is not None and {"value", "ci_low", "ci_high", "n_prompts"} <= set(red)
    assert red["ci_low"] <= red["value"] <= red["ci_high"]
    assert row.if_kept is not None and row.composite is not None
    assert result.n_pairs == N_PAIRS and result.n_contaminated == len(TRUTH_IDS)
    assert set(result.references) == {"m0", "m1"}
    assert result.references["m1"]["harmful_rate_distractor"]["value"] > 0  # so the reduction is defined

    # the run graded exactly the spec written for it, and the reduction is the run's own paired score
    run_dir = out / "runs" / "probe-remove-k4"
    run_results = json.loads((run_dir / "results.json").read_text())
    assert run_results["scores"]["harm_reduction"]["value"] == red["value"]
    assert run_results["retrain"]["pairs_after"] == N_PAIRS - 4
    written = json.loads((out / "specs" / "probe-remove-k4.json").read_text())
    assert written["data"] == {"action": "remove", "ranking": str(probe.resolve()), "top_n": 4}
    saved = json.loads((out / "results.json").read_text())
    assert saved["rows"][0]["precision_at_k"] == 0.5 and saved["ks"] == {"4": 4}
    table = (out / "table.md").read_text()
    assert "| probe | 4 | remove | 4 | 2 (50%) |" in table

    # a second call reads the finished run back: no retraining, no evaluation, the same row
    monkeypatch.setattr(dpo, "train_dpo", _no_training)
    evaluate = E.evaluate
    monkeypatch.setattr(E, "evaluate", _no_evaluation)
    again = C.run_causal_check(spec, out)
    assert again.rows[0].reused
    assert {**again.rows[0].to_dict(), "reused": False} == row.to_dict()
    # the CLI builds the same settings from its flags, so it reuses the run too, and prints the table
    code = main(["causal-check", "--profile", "smol", "--ranking", f"probe={probe}", "--k", "4", "--actions",
                 "remove", "--limit", "8", "--gen-kwargs", "max_new_tokens=4", "--n-boot", "50", "--dtype",
                 "float32", "--batch-size", "8", "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "probe (reused)" in printed and "2 (50%)" in printed

    # a finished run of other settings is refused, not silently overwritten
    with pytest.raises(InputError, match="different evaluation configuration"):
        C.run_causal_check(replace(spec, n_boot=60), out)

    # so is a run graded by another version of the judge; `rejudge` in place brings it up to date, then it is reused
    from benchmark.judges.refusal import RefusalJudge

    current = RefusalJudge.version
    monkeypatch.setattr(RefusalJudge, "version", current + "-next")
    with pytest.raises(InputError, match=r"judge_version '\d+' there, '\d+-next' asked.*rejudge"):
        C.run_causal_check(spec, out)
    assert main(["rejudge", str(run_dir), "--judge", "refusal", "--output", str(run_dir), "--overwrite"]) == 0
    capsys.readouterr()
    rejudged = C.run_causal_check(spec, out).rows[0]
    assert rejudged.reused and rejudged.harm_reduction == row.harm_reduction  # same texts, same verdicts
    monkeypatch.setattr(RefusalJudge, "version", current)
    with pytest.raises(InputError, match="judge_version"):
        C.run_causal_check(spec, out)  # and now the old version's settings no longer match the folder

    # an unfinished run (no results.json) is redone; the retrain cache still spares the training
    monkeypatch.setattr(E, "evaluate", evaluate)
    (run_dir / "results.json").unlink()
    redone = C.run_causal_check(spec, out).rows[0]
    assert not redone.reused and redone.retrain_status == "cached"
    assert redone.harm_reduction == row.harm_reduction
    assert (run_dir / "results.json").is_file()


def test_oracle_ranking_puts_the_contaminated_pairs_first(smol_tiny, tmp_path):
    from organism.data.preference import load_profile_preferences

    ranking = C.oracle_ranking(load_profile_preferences("smol"))
    n = len(TRUTH_IDS)
    assert sorted(ranking.top(n)) == TRUTH_IDS and len(ranking) == N_PAIRS
    assert set(ranking.scores[:n]) == {1.0} and set(ranking.scores[n:]) == {0.0}
    assert ranking.parameters["upper_bound_only"] is True
    assert C.oracle_ranking(load_profile_preferences("smol")) == ranking  # deterministic: the retrain cache holds


def test_oracle_at_k_truth_against_random(smol_tiny, tmp_path):
    import random

    ids = [r["id"] for r in toy_rows(N_PAIRS)]
    random.Random(3).shuffle(ids)
    rnd = _ranking(tmp_path / "random.jsonl", "random", ids)
    spec = C.CausalCheckConfig(profile="smol", rankings={"random": rnd}, oracle=True, ks=["truth"],
                             actions=["flip"], **FAST)
    result = C.run_causal_check(spec, tmp_path / "check")
    assert result.ks == {"truth": len(TRUTH_IDS)}
    by = {r.method: r for r in result.rows}
    assert set(by) == {"random", "oracle"}
    oracle = by["oracle"]
    assert oracle.k == len(TRUTH_IDS) and oracle.n_contaminated_hit == len(TRUTH_IDS) and oracle.precision_at_k == 1
    expected_hits = len(set(ids[:len(TRUTH_IDS)]) & set(TRUTH_IDS))
    assert by["random"].n_contaminated_hit == expected_hits
    # every row but the baseline's is compared with random at the same k and action, paired by prompt
    assert by["random"].vs_baseline is None
    diff = oracle.vs_baseline
    assert diff is not None and diff["ci_low"] <= diff["value"] <= diff["ci_high"]
    expected = oracle.harmful_distractor["value"] - by["random"].harmful_distractor["value"]
    assert diff["value"] == pytest.approx(expected)
    assert sorted(read_ranking(tmp_path / "check" / C.ORACLE_FILE).top(len(TRUTH_IDS))) == TRUTH_IDS
    assert "| oracle |" in (tmp_path / "check" / "table.md").read_text()


def test_bad_ranking_flag_exits_2(tmp_path, capsys):
    code = main(["causal-check", "--ranking", "probe:r.jsonl", "--k", "4", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "ranking" in err and "NAME=FILE" in err and "probe:r.jsonl" in err
    assert not (tmp_path / "out").exists()


def test_missing_ranking_file_exits_2_naming_it(tmp_path, capsys):
    missing = tmp_path / "nope.jsonl"
    code = main(["causal-check", "--ranking", f"probe={missing}", "--k", "4", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert str(missing) in err and "probe" in err and "no such file" in err
    assert not (tmp_path / "out").exists()


def test_bad_k_exits_2(tmp_path, capsys):
    code = main(["causal-check", "--ranking", "probe=r.jsonl", "--k", "4,lots", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "k" in err and "'lots'" in err
