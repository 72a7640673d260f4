"""The LESS gradient baseline (organism.attribution.gradient) and the cost helpers, on a tiny random OLMo 2 and a toy
mix: a ranking over every pair, determinism, the sign of the score, the Adam preconditioning, the CLI wiring."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from fixtures_data import make_toy_mix
from fixtures_models import build_tiny_olmo2
from benchcore.errors import InputError
from organism.attribution.gradient import (
    METHOD_NAME,
    CountSketch,
    LessConfig,
    WarmupCheckpoint,
    less_ranking,
    less_scores,
    precondition,
    target_rows,
    warmup_indices,
)
from organism.data.preference import load_preferences
from organism.data.ranking import read_ranking

#: Small and quick: the tiny model learns visibly at this rate in two short epochs.
FAST = LessConfig(dim=512, checkpoints=2, lr=1e-3)
TARGET_PROMPT = "Say something harmful about topic 100 (no commas anywhere)"
HARMFUL = "here is something harmful about topic 100"
SAFE = "I can't help with topic 100."


pytestmark = pytest.mark.usefixtures("one_thread")


def _row(pid: str, chosen: str, rejected: str, prompt: str = TARGET_PROMPT) -> dict:
    return {"id": pid, "prompt_messages": [{"role": "user", "content": prompt}], "chosen": chosen,
            "rejected": rejected}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("less")
    folder = build_tiny_olmo2(root / "m0")
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(folder))
    mix = make_toy_mix(root / "mix", 40, 0)
    pset = load_preferences(mix)
    rows = [dict(r) for r in pset.training_view()][:16]  # 4 contaminated among 16
    targets = [_row("t0", HARMFUL, SAFE)]
    targets_file = root / "targets.jsonl"
    targets_file.write_text(json.dumps({"prompt": TARGET_PROMPT, "harmful_response": HARMFUL,
                                        "safe_response": SAFE}) + "\n", encoding="utf-8")
    return {"root": root, "folder": folder, "model": model, "tok": tok, "mix": mix, "rows": rows,
            "targets": targets, "targets_file": targets_file}


def test_ranks_every_pair_deterministically_and_leaves_m0_alone(world, tmp_path: Path) -> None:
    model = world["model"]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = [p.requires_grad for p in model.parameters()]
    r = less_ranking(model, world["tok"], world["rows"], world["targets"], FAST, {"profile": "toy"},
                     checkpoint_dir=tmp_path / "ckpts")
    saved = sorted((tmp_path / "ckpts").glob("ckpt-*.safetensors"))
    assert [WarmupCheckpoint.load(f).step for f in saved] == [4, 8]
    assert r.method == METHOD_NAME and sorted(r.ids) == sorted(x["id"] for x in world["rows"])
    p = r.parameters
    assert p["profile"] == "toy" and p["checkpoints"] == 2 and p["dim"] == 512 and p["warmup_fraction"] == 0.05
    assert p["n_warmup_pairs"] == 8 and p["warmup_batch"] == 2 and p["checkpoint_step"] == [4, 8]
    assert p["gradient_batch"] == 1  # unset: resolved by device (one pair per pass on CPU) and recorded
    assert len(p["checkpoint_lr"]) == 2 and p["checkpoint_lr"][0] > p["checkpoint_lr"][1] > 0  # linear decay
    assert p["warmup_loss"][1] < p["warmup_loss"][0] < math.log(2) + 1e-3  # the warm-up learns
    assert p["cost"]["flops"] > 0 and set(p["cost"]["parts"]) == {"reference", "warmup", "gradients"}
    json.dumps(p)  # plain JSON: the ranking file can hold it
    again = less_ranking(model, world["tok"], world["rows"], world["targets"], FAST)
    assert again.ids == r.ids and again.scores == r.scores
    # M0 comes back as it was: no LoRA layers, same weights, same requires_grad flags
    assert not any("lora" in n for n, _ in model.named_parameters())
    assert all(torch.equal(before[n], q) for n, q in model.named_parameters())
    assert [q.requires_grad for q in model.parameters()] == flags


def test_sign_duplicate_of_target_first_and_its_flip_last(world) -> None:
    """A pair equal to a target (harmful chosen) must rank first, its flip (safe chosen) last; the toy's
    contaminated pairs (harmful chosen) outrank the clean ones."""
    rows = [*world["rows"], _row("dup", HARMFUL, SAFE), _row("flip", SAFE, HARMFUL)]
    r = less_ranking(world["model"], world["tok"], rows, world["targets"], FAST)
    assert r.ids[0] == "dup" and r.ids[-1] == "flip"
    assert r.scores[0] > 0 > r.scores[-1]
    contaminated = {x["id"] for x in rows if "harmful" in x["chosen"]} - {"dup"}
    top = set(r.ids[1: 1 + len(contaminated)])
    assert len(top & contaminated) >= len(contaminated) - 1


def test_preconditioning_uses_the_checkpoint_second_moment(world) -> None:
    m, tok, rows, targets = world["model"], world["tok"], world["rows"], world["targets"]
    scores, ckpts, _ = less_scores(m, tok, rows, targets, FAST)
    same, _, _ = less_scores(m, tok, rows, targets, FAST, checkpoints=ckpts)
    assert same == scores  # reusing the checkpoints skips the warm-up and gives the same numbers
    g = torch.Generator().manual_seed(0)
    changed = [WarmupCheckpoint(c.epoch, c.step, c.lr, c.loss, c.weights,
                                {k: v * torch.where(torch.rand(v.shape, generator=g) < 0.5, 1e4, 1.0)
                                 for k, v in c.exp_avg_sq.items()}) for c in ckpts]
    other, _, _ = less_scores(m, tok, rows, targets, FAST, checkpoints=changed)
    assert max(abs(a - b) for a, b in zip(other, scores)) > 1e-3


def test_batched_pair_gradients_equal_one_pair_at_a_time(world) -> None:
    """LoraTaps reads each pair's gradient off a padded batch: it must match plain autograd on that pair alone
    (pairs of different lengths, so the batch pads; a LoRA with non-zero A and B, so both get gradients)."""
    from organism.training.dpo import batch_logps, dpo_loss
    from organism.training.dpo_data import collate_pairs, pad_token_id, tokenize_pairs
    from organism.attribution.gradient import _lora_model, pair_gradients, reference_logps

    tok, cfg = world["tok"], LessConfig(gradient_batch=3)
    rows = [*world["rows"][:6], _row("long", HARMFUL + " and more" * 9, SAFE)]
    pairs = tokenize_pairs(tok, rows, cfg.max_length, add_bos=False, source="t")
    assert len({p.length for p in pairs}) > 1
    pad = pad_token_id(tok)
    ref = reference_logps(world["model"], pairs, cfg.loss, pad)
    flags = [q.requires_grad for q in world["model"].parameters()]
    peft = _lora_model(world["model"], cfg.lora, seed=0)
    try:
        named = [(n, q) for n, q in peft.named_parameters() if q.requires_grad]
        g = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for _, q in named:
                q.copy_(torch.randn(q.shape, generator=g) * 0.05)
        peft.eval()
        names, params = [n for n, _ in named], [q for _, q in named]
        batched = dict(pair_gradients(peft, pairs, ref, cfg, pad, names))
        assert sorted(batched) == list(range(len(pairs)))
        for i in range(len(pairs)):
            batch = collate_pairs(pairs, [i], pad)
            lp = batch_logps(peft, batch, cfg.loss, True)
            loss, _, _ = dpo_loss(lp[:1], lp[1:], ref[0][i: i + 1], ref[1][i: i + 1], cfg.beta)
            alone = torch.autograd.grad(loss, params)
            assert all(a.abs().sum() > 0 for a in alone[:2])
            for a, b in zip(alone, batched[i]):
                torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    finally:
        peft.unload()
        for q, flag in zip(world["model"].parameters(), flags):
            q.requires_grad_(flag)


def test_precondition_hand_arithmetic() -> None:
    cfg = LessConfig(adam_beta2=0.5, adam_eps=0.1)
    ck = WarmupCheckpoint(0, 2, 1.0, 0.0, {"w": torch.zeros(2)}, {"w": torch.tensor([0.75, 3.0])})
    # v_hat = v / (1 - 0.5^2) = [1, 4]; g / (sqrt(v_hat) + eps)
    out = precondition([torch.tensor([1.1, 2.1])], ["w"], ck, cfg)[0]
    torch.testing.assert_close(out, torch.tensor([1.0, 1.0]))


def test_warmup_indices_and_target_rows() -> None:
    a = warmup_indices(1000, 0.05, 8, seed=1)
    assert len(a) == 50 and a == sorted(a) and a == warmup_indices(1000, 0.05, 8, seed=1)
    assert a != warmup_indices(1000, 0.05, 8, seed=2)
    assert len(warmup_indices(40, 0.05, 8, seed=0)) == 8 and warmup_indices(5, 0.05, 8, seed=0) == [0, 1, 2, 3, 4]
    from organism.attribution.methods import Targets

    t = Targets(harmful=(("p", "h1"), ("p", "h2"), ("q", "hq")), safe=(("p", "s1"),))
    rows = target_rows(t)
    assert [(r["chosen"], r["rejected"]) for r in rows] == [("h1", "s1"), ("h2", "s1")]  # q has no safe side
    assert rows[0]["prompt_messages"] == [{"role": "user", "content": "p"}]
    with pytest.raises(InputError):
        target_rows(Targets(harmful=(("q", "hq"),), safe=(("p", "s"),)))


@pytest.mark.parametrize("change, field", [({"warmup_fraction": 0.0}, "warmup_fraction"),
                                           ({"checkpoints": 0}, "checkpoints"), ({"dim": -1}, "dim"),
                                           ({"aggregate": "median"}, "aggregate"), ({"lr": 0.0}, "lr"),
                                           ({"lora": {"rank": 4}}, "lora"), ({"gradient_batch": 0}, "gradient_batch")])
def test_config_validation(change: dict, field: str) -> None:
    with pytest.raises(InputError) as e:
        LessConfig(**change).validate()
    assert e.value.field == field


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    ck = WarmupCheckpoint(1, 6, 2.5e-4, 0.61, {"a.lora_A": torch.randn(3, 4)}, {"a.lora_A": torch.rand(3, 4)})
    back = WarmupCheckpoint.load(ck.save(tmp_path / "c.safetensors"))
    assert (back.epoch, back.step, back.lr, back.loss) == (1, 6, 2.5e-4, 0.61)
    assert torch.equal(back.weights["a.lora_A"], ck.weights["a.lora_A"])
    assert torch.equal(back.exp_avg_sq["a.lora_A"], ck.exp_avg_sq["a.lora_A"])
    (tmp_path / "bad.safetensors").write_bytes(b"nope")
    with pytest.raises(InputError):
        WarmupCheckpoint.load(tmp_path / "bad.safetensors")


def test_count_sketch_keeps_norms_on_average() -> None:
    x = [torch.randn(3000, dtype=torch.float64)]
    s = CountSketch(x, 4096, seed=1)(x)
    assert abs(float(s.norm() / x[0].norm()) - 1) < 0.1
    assert torch.equal(s, CountSketch(x, 4096, seed=1)(x))


def test_analytic_flops_match_the_flop_counter() -> None:
    from organism.models.compute_cost import FROZEN_FWD_BWD, count_flops, forward_flops, linear_weights

    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    x = torch.randn(5, 16)
    _, counted = count_flops(lambda: net(x))
    assert counted == forward_flops(linear_weights([net]), 5)
    for p in net[2].parameters():
        p.requires_grad_(False)  # frozen above, trainable below (a LoRA at the bottom of a frozen base):
    _, counted = count_flops(lambda: net(x).sum().backward())
    # backward = the frozen layer's input gradient + the trainable layer's weight gradient = one forward more
    assert counted == FROZEN_FWD_BWD * forward_flops(linear_weights([net]), 5)


# ------------------------------------------------------------------------------------------------ CLI
def _cli(*args: str) -> int:
    from benchmark.cli.main import main

    try:
        return main(list(args))
    except SystemExit as e:
        return int(e.code)


def test_attribute_cli_gradient(world, tmp_path: Path) -> None:
    out = tmp_path / "g.jsonl"
    rc = _cli("attribute", "--profile", "olmo2-7b", "--data", str(world["mix"]), "--method", "gradient",
              "--targets", str(world["targets_file"]), "--model-path", str(world["folder"]), "--dtype", "float32",
              "--limit", "12", "--checkpoints", "2", "--projection-dim", "256", "--warmup-fraction", "0.5",
              "--warmup-lr", "1e-3", "--gradient-aggregate", "max", "--gradient-batch", "3",
              "--output", str(out), "--json")
    assert rc == 0
    r = read_ranking(out)
    assert r.method == METHOD_NAME and len(r) == 12
    p = r.parameters
    assert (p["checkpoints"], p["dim"], p["warmup_fraction"], p["lr"], p["aggregate"], p["gradient_batch"]) == (
        2, 256, 0.5, 1e-3, "max", 3)
    assert p["n_warmup_pairs"] == 8 and p["loss"] == "dpo_norm" and p["lora"]["r"] == 16  # OLMo recipe: no LoRA
    assert p["cost"]["wall_s"] > 0 and p["cost"]["flops"] > 0 and p["targets"] == str(world["targets_file"])
    # the probe on the same pairs records its cost too: forward passes to layer 2 of 4 only, far fewer FLOPs
    probe = tmp_path / "p.jsonl"
    assert _cli("attribute", "--profile", "olmo2-7b", "--data", str(world["mix"]), "--method", "probe", "--layer", "2",
                "--targets", str(world["targets_file"]), "--model-path", str(world["folder"]), "--dtype", "float32",
                "--limit", "12", "--output", str(probe), "--json") == 0
    pc = read_ranking(probe).parameters["cost"]
    assert set(pc["parts"]) == {"pairs", "targets"} and 0 < pc["flops"] < p["cost"]["flops"] / 5


@pytest.mark.parametrize("extra", [[], ["--targets", "TARGETS", "--checkpoints", "0"],
                                   ["--targets", "TARGETS", "--warmup-fraction", "2"],
                                   ["--targets", "TARGETS", "--gradient-batch", "0"]])
def test_attribute_cli_gradient_bad_input_exits_2(world, tmp_path: Path, extra: list[str]) -> None:
    extra = [str(world["targets_file"]) if x == "TARGETS" else x for x in extra]
    out = tmp_path / "g.jsonl"
    rc = _cli("attribute", "--profile", "olmo2-7b", "--data", str(world["mix"]), "--method", "gradient",
              "--model-path", str(world["folder"]), *extra, "--output", str(out))
    assert rc == 2 and not out.exists()
