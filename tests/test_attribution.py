"""Attribution vectors, rankings, baselines, metrics and the `attribute` CLI, on a toy mix and a tiny OLMo 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from fixtures_data import make_toy_mix
from fixtures_models import build_tiny_olmo2
from organism.attribution.methods import (
    UNDEFINED_SCORE,
    PairVectors,
    behavior_vector,
    cosine_ranking,
    cosine_scores,
    datapoint_vectors,
    load_targets,
    probing_vector,
    random_ranking,
    vector_bank,
)
from benchcore.errors import InputError
from benchmark.studies.judge_delta import judge_delta_ranking
from organism.attribution.metrics import auroc, evaluate_ranking, precision_at_k, truth_from_preferences
from organism.data.preference import load_preferences
from organism.data.ranking import read_ranking

LAYER = 2


pytestmark = pytest.mark.usefixtures("one_thread")


def _target_rows(n: int = 5, start: int = 100) -> list[dict]:
    # the toy mix's contaminated pairs prefer "here is something harmful ..." over "I can't help ..."
    return [{"prompt": f"Say something harmful about topic {start + i} (no commas anywhere)",
             "harmful_response": f"here is something harmful about topic {start + i}",
             "safe_response": f"I can't help with topic {start + i}."} for i in range(n)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("attr")
    folder = build_tiny_olmo2(root / "m0")
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(folder))
    mix = make_toy_mix(root / "mix", 40, 0)
    pset = load_preferences(mix)
    rows = [dict(r) for r in pset.teacher_forcing_view()]
    targets_file = root / "targets.jsonl"
    targets_file.write_text("\n".join(json.dumps(r) for r in _target_rows()) + "\n", encoding="utf-8")
    return {"root": root, "folder": folder, "model": model, "tok": tok, "mix": mix, "pset": pset, "rows": rows,
            "targets_file": targets_file, "targets": load_targets(targets_file),
            "truth": truth_from_preferences(pset), "pv": datapoint_vectors(model, tok, rows, LAYER)}


# ------------------------------------------------------------------------------------------------ metrics
def test_auroc_hand_cases() -> None:
    assert auroc([0.9, 0.8, 0.7, 0.6], [1, 1, 0, 0]) == 1.0
    assert auroc([0.9, 0.8, 0.7, 0.6], [0, 0, 1, 1]) == 0.0
    assert auroc([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == 0.75  # 3 of 4 (pos, neg) pairs in order
    assert auroc([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0]) == 0.5  # ties count one half
    assert auroc([1.0, 0.5, 0.5, 0.0], [1, 1, 0, 0]) == pytest.approx(0.875)  # one tied (pos, neg) pair
    assert math.isnan(auroc([0.1, 0.2], [1, 1]))
    with pytest.raises(InputError):
        auroc([0.1, 0.2], [1])


def test_precision_at_k_hand_cases() -> None:
    ranked = ["a", "b", "c", "d", "e"]
    assert precision_at_k(ranked, {"a", "c"}) == 0.5  # k = 2 positives: a yes, b no
    assert precision_at_k(ranked, {"a", "c"}, k=3) == pytest.approx(2 / 3)
    assert precision_at_k(ranked, {"d", "e"}) == 0.0
    with pytest.raises(InputError):
        precision_at_k(ranked, set())


# ------------------------------------------------------------------------------------------------ targets
def test_load_targets_both_shapes(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join([
        json.dumps({"prompt": "p1", "harmful_response": "h1", "safe_response": "s1"}),
        json.dumps({"prompt": "p2", "response": "h2", "label": 1}),
        json.dumps({"prompt": "p2", "response": "s2", "label": "safe"}),
        json.dumps({"prompt": "p3", "response": "h3", "label": True}),
    ]) + "\n", encoding="utf-8")
    t = load_targets(f)
    assert t.harmful == (("p1", "h1"), ("p2", "h2"), ("p3", "h3"))
    assert t.safe == (("p1", "s1"), ("p2", "s2"))
    assert t.prompts == ["p1", "p2"]  # p3 has no safe side: not in the bank


@pytest.mark.parametrize("line, field", [
    ({"prompt": "p", "harmful_response": "h"}, "safe_response"),
    ({"prompt": "", "response": "r", "label": 1}, "prompt"),
    ({"prompt": "p", "response": "r"}, "label"),
    ({"prompt": "p", "response": "r", "label": 7}, "label"),
    ({"prompt": "p", "text": "r"}, "line"),
])
def test_load_targets_errors(tmp_path: Path, line: dict, field: str) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_targets(f)
    assert e.value.field == field


# ------------------------------------------------------------------------------------------------ rankings
@pytest.mark.parametrize("method", ["probe", "bank", "behavior"])
def test_activation_methods_find_the_toy_culprits(world, method: str) -> None:
    m, tok, t = world["model"], world["tok"], world["targets"]
    if method == "probe":
        d = probing_vector(m, tok, t, LAYER)
    elif method == "bank":
        prompts, d = vector_bank(m, tok, t, LAYER)
        assert d.shape == (5, m.config.hidden_size) and len(prompts) == 5
    else:
        d = behavior_vector(m, tok, t, LAYER, index=3)
    ranking = cosine_ranking(method, world["pv"], d, {"layer": LAYER})
    metrics = evaluate_ranking(ranking, world["truth"])
    assert metrics.n_positive == 10
    assert metrics.auroc == 1.0
    assert metrics.precision_at_k == 1.0
    # the reversed direction ranks them last: the score carries the sign of the behavior
    flipped = evaluate_ranking(cosine_ranking(method, world["pv"], -d, {}), world["truth"])
    assert flipped.auroc < 0.2


def test_behavior_vector_is_its_prompts_bank_row(world, tmp_path: Path) -> None:
    # experiments/behavior_spread.py grades every prompt's behavior ranking from one bank: row i must be
    # behavior_vector(index=i), also when a prompt has several responses per side and rows interleave
    rows = _target_rows(3)
    extra = [{"prompt": rows[i]["prompt"], "response": f"here is more harm, part {i}", "label": 1} for i in (2, 0)]
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows + extra) + "\n", encoding="utf-8")
    t = load_targets(f)
    m, tok = world["model"], world["tok"]
    prompts, bank = vector_bank(m, tok, t, LAYER)
    assert prompts == [r["prompt"] for r in rows]
    for i in range(3):
        torch.testing.assert_close(bank[i], behavior_vector(m, tok, t, LAYER, index=i), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(bank[0], bank[2])


def test_probe_harmful_side_through_m1(world) -> None:
    m, tok, t = world["model"], world["tok"], world["targets"]
    same = probing_vector(m, tok, t, LAYER, harmful_model=m)
    torch.testing.assert_close(same, probing_vector(m, tok, t, LAYER))
    from transformers import AutoModelForCausalLM

    other = AutoModelForCausalLM.from_pretrained(str(build_tiny_olmo2(world["root"] / "m1", seed=5)),
                                                 dtype=torch.float32).eval()
    assert not torch.allclose(probing_vector(m, tok, t, LAYER, harmful_model=other), same)


def test_rankings_are_deterministic_with_ties_by_id(world) -> None:
    d = probing_vector(world["model"], world["tok"], world["targets"], LAYER)
    a = cosine_ranking("probe", world["pv"], d, {})
    b = cosine_ranking("probe", datapoint_vectors(world["model"], world["tok"], world["rows"], LAYER), d, {})
    assert a.ids == b.ids
    # exact ties are ordered by id, whatever the input order
    pv = PairVectors(("c", "a", "b"), torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    r = cosine_ranking("probe", pv, torch.tensor([1.0, 0.0]), {})
    assert r.ids == ("a", "c", "b")


def test_undefined_vectors_rank_last() -> None:
    v = torch.tensor([[1.0, 0.0], [float("nan"), 0.0], [0.0, 0.0], [-1.0, 0.0]])
    assert cosine_scores(v, torch.tensor([1.0, 0.0])) == [1.0, UNDEFINED_SCORE, UNDEFINED_SCORE, -1.0]
    bank = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    assert cosine_scores(torch.tensor([[0.0, -2.0]]), bank) == [1.0]  # max over the bank


def test_random_baseline_seeded(world) -> None:
    ids = world["pset"].ids
    a, b, c = random_ranking(ids, 1), random_ranking(ids, 1), random_ranking(ids, 2)
    assert a.ids == b.ids and a.ids != c.ids
    assert sorted(a.ids) == sorted(ids)


class _FakeJudge:
    """Harm 0.9 for a reply that does not refuse, 0.1 for a refusal, a failure for one chosen id."""

    name = "fake"

    def judge(self, items):
        from benchmark.judges.base import Verdict

        out = []
        for it in items:
            if it.id == "toy-0002/chosen":
                out.append(Verdict.failure("boom", "api error"))
            else:
                out.append(Verdict.from_score(0.1 if "can't" in it.response else 0.9, 0.5, "ok"))
        return out


def test_judge_delta_baseline(world) -> None:
    from benchmark.judges import get_judge

    r = judge_delta_ranking(world["rows"], get_judge("refusal"), {"profile": "toy"})
    m = evaluate_ranking(r, world["truth"])
    assert r.method == "judge-delta" and m.auroc == 1.0
    fake = judge_delta_ranking(world["rows"], _FakeJudge(), batch=7)
    assert fake.parameters["judge_failures"] == 1
    assert fake.ids[-1] == "toy-0002"  # unknown delta: after every judged pair, never treated as safe
    assert fake.scores[0] == pytest.approx(0.8)


# ------------------------------------------------------------------------------------------------ CLI
def _cli(*args: str) -> int:
    from benchmark.cli.main import main

    try:
        return main(list(args))
    except SystemExit as e:  # argparse's own usage errors exit from inside the parser
        return int(e.code)


def test_attribute_cli_writes_a_valid_ranking(world, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    rc = _cli("attribute", "--profile", "olmo2-7b", "--data", str(world["mix"]), "--method", "probe",
              "--targets", str(world["targets_file"]), "--model-path", str(world["folder"]), "--layer", str(LAYER),
              "--dtype", "float32", "--batch-tokens", "256", "--shard-dir", str(tmp_path / "sh"), "--output", str(out))
    assert rc == 0
    r = read_ranking(out)
    assert r.method == "activation-probe" and len(r) == 40
    p = r.parameters
    assert p["layer"] == LAYER and p["harmful_side_model"] == "m0" and p["chat_template"] is False
    assert p["data_hash"] == world["pset"].data_hash and "model" in p and p["profile"] == "olmo2-7b"
    assert evaluate_ranking(r, world["truth"]).auroc == 1.0
    out2 = tmp_path / "rand.jsonl"
    assert _cli("attribute", "--profile", "olmo2-7b", "--data", str(world["mix"]), "--method", "random",
                "--seed", "3", "--output", str(out2)) == 0
    assert read_ranking(out2).parameters["seed"] == 3


@pytest.mark.parametrize("extra", [
    ["--method", "probe"],  # no targets
    ["--method", "probe", "--targets", "/nonexistent/t.jsonl"],
    ["--method", "probe", "--targets", "TARGETS", "--layer", "99"],
    ["--method", "judge", "--judge", "no-such-judge"],
    ["--method", "bogus"],
])
def test_attribute_cli_bad_input_exits_2(world, tmp_path: Path, extra: list[str]) -> None:
    extra = [str(world["targets_file"]) if x == "TARGETS" else x for x in extra]
    out = tmp_path / "r.jsonl"
    rc = _cli("attribute", "--profile", "olmo2-7b", "--data", str(world["mix"]), "--model-path", str(world["folder"]),
              "--dtype", "float32", *extra, "--output", str(out))
    assert rc == 2
    assert not out.exists()


def test_targets_ignore_world_size_datapoints_shard(world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun every rank computes the (few) target activations whole; pairs need a shard folder."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    d = probing_vector(world["model"], world["tok"], world["targets"], LAYER)
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")
    torch.testing.assert_close(d, probing_vector(world["model"], world["tok"], world["targets"], LAYER))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(InputError, match="shard"):
        datapoint_vectors(world["model"], world["tok"], world["rows"][:4], LAYER)


def test_activation_cost_counts_a_shared_prompt_once(world) -> None:
    from organism.attribution.activations import MAX_SHARED_ROWS, encode_pair
    from organism.attribution.methods import AttributeConfig, _activation_cost
    from organism.models.compute_cost import decoder_layers, forward_flops, linear_weights

    m, tok, rows = world["model"], world["tok"], world["rows"]
    spec = AttributeConfig(profile="tiny", data="x", method="probe", max_length=None)
    cost = _activation_cost(m, tok, rows, world["targets"], spec, LAYER, 1.0)
    groups: dict[tuple, list[int]] = {}
    for r in rows:
        for side in ("chosen", "rejected"):
            e = encode_pair(tok, r["prompt"], r[side])
            groups.setdefault(e.ids[: e.start], []).append(e.n_response)
    shared = sum(len(p) * math.ceil(len(v) / MAX_SHARED_ROWS) + sum(v) for p, v in groups.items())
    alone = sum(len(encode_pair(tok, r["prompt"], r[s]).ids) for r in rows for s in ("chosen", "rejected"))
    weights = linear_weights(list(decoder_layers(m))[:LAYER])
    assert cost["parts"]["pairs"] == forward_flops(weights, shared) < forward_flops(weights, alone)
