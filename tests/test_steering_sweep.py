"""Steering layer sweep on tiny random models: one row per (layer, scale) plus the baseline, the hook is live
(a huge scale changes the generations, scale 0 leaves them identical) on tensor-returning (OLMo 2) and
tuple-returning (Falcon) decoder layers, per-layer probing vectors from a targets file, and the CLI's bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from fixtures_models import build_tiny_olmo2, build_tiny_tokenizer

from benchcore.errors import InputError
from organism.models.steering import _SteerHook, decoder_layers
from benchmark.studies.steering_sweep import SweepConfig, check_spec, probing_vectors, run_sweep

HUGE = 1e4
SMALL = {"n_prompts": 2, "max_new_tokens": 4, "batch_size": 4}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, FalconConfig, FalconForCausalLM

    root = tmp_path_factory.mktemp("steer")
    folder = build_tiny_olmo2(root / "m0")
    olmo = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(folder))
    ids = build_tiny_tokenizer(root / "tok")
    torch.manual_seed(0)
    falcon = FalconForCausalLM(FalconConfig(vocab_size=olmo.config.vocab_size, hidden_size=32, num_hidden_layers=2,
                                            num_attention_heads=4, eos_token_id=ids["<|endoftext|>"],
                                            pad_token_id=ids["<|pad|>"])).eval()
    vec = root / "v.safetensors"
    save_file({"vector": torch.randn(64, generator=torch.Generator().manual_seed(5))}, str(vec))
    narrow = root / "narrow.safetensors"
    save_file({"vector": torch.randn(63)}, str(narrow))
    targets = root / "targets.jsonl"
    targets.write_text("\n".join(json.dumps({"prompt": f"Say something harmful about topic {i}",
                                             "harmful_response": f"here is something harmful about topic {i}",
                                             "safe_response": f"I can't help with topic {i}."})
                                 for i in range(3)) + "\n", encoding="utf-8")
    return {"root": root, "folder": folder, "olmo": olmo, "tok": tok, "falcon": falcon, "vec": vec,
            "narrow": narrow, "targets": targets}


def _token_vector(model, tok, path: Path, letter: str = "Z") -> Path:
    """The unembedding row of `letter`: pushed hard into the residual stream it makes greedy decoding print that
    letter, so "the hook is live" shows in the decoded text (random bytes can decode to the same replacement
    characters whatever the tokens)."""
    from safetensors.torch import save_file

    (token,) = tok(letter, add_special_tokens=False)["input_ids"]
    row = model.get_output_embeddings().weight[token].detach().float().clone()
    save_file({"vector": row / row.norm()}, str(path))
    return path


def test_rows_per_setting_baseline_and_writers(world, tmp_path: Path) -> None:
    vec = _token_vector(world["olmo"], world["tok"], tmp_path / "z.safetensors")
    spec = SweepConfig(profile="olmo2-7b", vector=str(vec), layers=(0, 2), scales=(0.0, HUGE), **SMALL)
    result = run_sweep(spec, model=world["olmo"], tokenizer=world["tok"])
    assert [(r.layer, r.scale, r.mode) for r in result.rows] == [(0, 0.0, "add"), (0, HUGE, "add"),
                                                                  (2, 0.0, "add"), (2, HUGE, "add")]
    assert result.baseline.layer is None and result.baseline.mode == "none"
    assert result.baseline.n == 2 and len(result.prompt_ids) == 4  # 2 scenarios x base/distractor
    base = result.responses[None]
    for layer in (0, 2):
        assert result.responses[(layer, 0.0)] == base  # scale 0: the hook changes nothing
        assert result.responses[(layer, HUGE)] != base  # a huge push: the hook is live
        assert all("Z" in r for r in result.responses[(layer, HUGE)])
    by = {(r.layer, r.scale): r for r in result.rows}
    assert by[(0, 0.0)].changed_vs_baseline == 0.0 and by[(0, HUGE)].changed_vs_baseline > 0.0
    # the same text scores the same, other text otherwise (a random model is too flat for "less likely" to
    # hold: tests/test_fluency.py checks the numbers themselves)
    assert by[(0, 0.0)].nll == pytest.approx(result.baseline.nll)
    for layer in (0, 2):
        assert math.isfinite(by[(layer, HUGE)].nll) and by[(layer, HUGE)].nll != pytest.approx(result.baseline.nll)
        # a unit vector: scale over the residual norm; the tiny model's residual norms are far below 1e4
        assert by[(layer, 0.0)].relative_norm == 0.0 and by[(layer, HUGE)].relative_norm > 100.0
    assert result.baseline.relative_norm is None
    # every rate and NLL is what its samples say
    for r in result.table:
        rows = result.samples[None if r.layer is None else (r.layer, r.scale)]
        for variant, rate in (("base", r.harmful_base), ("distractor", r.harmful_distractor)):
            labels = [x.harmful for x in rows if x.variant == variant]
            assert len(labels) == 2 and sum(labels) / 2 == rate
        assert sum(x.nll for x in rows) / len(rows) == pytest.approx(r.nll)
        assert all(x.judge_raw for x in rows)
    for r in result.table:
        for value, (lo, hi) in ((r.harmful_base, r.ci_base), (r.harmful_distractor, r.ci_distractor)):
            assert 0.0 <= lo <= value <= hi <= 1.0
    out, md = tmp_path / "sweep.json", tmp_path / "sweep.md"
    result.write_json(out)
    result.write_markdown(md)
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["kind"] == "steering-sweep" and len(data["rows"]) == 4
    assert data["baseline"]["layer"] is None and data["spec"]["layers"] == [0, 2]
    assert data["vector_source"]["kind"] == "file" and data["model"]["identity"].startswith("injected-sha256=")
    assert data["rows"][1]["nll"] == pytest.approx(by[(0, HUGE)].nll)
    text = md.read_text(encoding="utf-8")
    assert text.count("\n| ") == 1 + 1 + 4  # header, baseline, four settings
    assert f"| {by[(0, HUGE)].nll:.2f} | {by[(0, HUGE)].relative_norm:.2f} |" in text
    result.write_samples(tmp_path / "samples.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 5 * 4 and [x["layer"] for x in lines[:5]] == [None] * 4 + [0]
    assert [(x["scale"], x["response"]) for x in lines if x["layer"] == 2][-1] == (HUGE,
                                                                                  result.responses[(2, HUGE)][-1])
    assert {x["prompt_id"] for x in lines} == set(result.prompt_ids)


def test_responses_seen_before_are_not_scored_again(world, tmp_path: Path, monkeypatch) -> None:
    import organism.models.fluency as fluency

    scored: list[int] = []
    real = fluency.score_responses

    def counting(model, tokenizer, prompts, responses, **kw):
        scored.append(len(responses))
        return real(model, tokenizer, prompts, responses, **kw)

    monkeypatch.setattr(fluency, "score_responses", counting)
    vec = _token_vector(world["olmo"], world["tok"], tmp_path / "z.safetensors")
    spec = SweepConfig(profile="olmo2-7b", vector=str(vec), layers=(0, 2), scales=(0.0, HUGE), **SMALL)
    result = run_sweep(spec, model=world["olmo"], tokenizer=world["tok"])
    seen: set[tuple[int, str]] = set()
    expected = []
    for key in (None, (0, 0.0), (0, HUGE), (2, 0.0), (2, HUGE)):
        new = {(i, r) for i, r in enumerate(result.responses[key])} - seen
        expected.append(len(new))
        seen |= new
    # baseline: all 4; scale 0 leaves the baseline's text, so nothing is scored for it
    assert scored == expected and expected[:4] == [4, 0, 4, 0]
    by = {(r.layer, r.scale): r for r in result.rows}
    assert by[(0, 0.0)].nll == by[(2, 0.0)].nll == result.baseline.nll != by[(0, HUGE)].nll


@pytest.mark.parametrize("arch, output_type", [("olmo", torch.Tensor), ("falcon", tuple)])
def test_tensor_and_tuple_layers(world, tmp_path: Path, arch: str, output_type: type) -> None:
    model = world[arch]
    vec = _token_vector(model, world["tok"], tmp_path / "z.safetensors")
    seen: list = []
    layer = decoder_layers(model)[1]
    handle = layer.register_forward_hook(lambda _m, _a, out: seen.append(out))
    try:
        spec = SweepConfig(profile="olmo2-7b", vector=str(vec), layers=(1,), scales=(0.0, HUGE), **SMALL)
        # an identity of its own: a cache hit from an earlier run would skip the forward passes this test watches
        result = run_sweep(spec, model=model, tokenizer=world["tok"], identity=f"{arch}-{tmp_path}")
    finally:
        handle.remove()
    assert seen and all(isinstance(out, output_type) for out in seen)  # the layer kind this case is about
    assert result.responses[(1, 0.0)] == result.responses[None]
    assert result.responses[(1, HUGE)] != result.responses[None]
    assert all("Z" in r for r in result.responses[(1, HUGE)])
    # no steering hook left behind (transformers keeps hooks of its own once hidden states were asked for)
    assert not any(isinstance(h, _SteerHook) for layer in decoder_layers(model) for h in layer._forward_hooks.values())


def test_project_out_runs_and_is_recorded(world) -> None:
    spec = SweepConfig(profile="olmo2-7b", vector=str(world["vec"]), layers=(1,), scales=(1.0,), mode="project_out",
                     n_prompts=1, max_new_tokens=3)
    result = run_sweep(spec, model=world["olmo"], tokenizer=world["tok"])
    assert result.rows[0].mode == "project_out" and result.to_dict()["spec"]["mode"] == "project_out"
    assert result.rows[0].relative_norm is None and result.rows[0].nll > 0.0  # a norm ratio only means "add"


def test_targets_give_one_probing_vector_per_layer(world) -> None:
    from organism.attribution.methods import load_targets, probing_vector

    targets = load_targets(world["targets"])
    stacked = probing_vectors(world["olmo"], world["tok"], targets, [1, 3])
    for i, index in enumerate((1, 3)):
        assert torch.allclose(stacked[i], probing_vector(world["olmo"], world["tok"], targets, index), atol=1e-5)
    spec = SweepConfig(profile="olmo2-7b", targets=str(world["targets"]), layers=(0, 2), scales=(1.0,),
                     n_prompts=1, max_new_tokens=3)
    result = run_sweep(spec, model=world["olmo"], tokenizer=world["tok"])
    assert result.vector_source["kind"] == "targets"
    r0, r2 = result.rows
    # layer L is steered with the vector read at hidden_states[L + 1]
    assert r0.vector_sha256 != r2.vector_sha256
    assert r0.vector_norm == pytest.approx(float(stacked[0].norm()), rel=1e-5)


@pytest.mark.parametrize("changes, field", [
    ({"vector": None}, "vector"),  # neither a vector nor targets
    ({"targets": "T"}, "vector"),  # both
    ({"vector": "/nonexistent/v.safetensors"}, "vector"),
    ({"layers": ()}, "layers"),
    ({"layers": (-1,)}, "layers"),
    ({"layers": (1, 1)}, "layers"),
    ({"scales": (float("nan"),)}, "scales"),
    ({"mode": "subtract"}, "mode"),
    ({"split": "nope"}, "split"),
    ({"n_prompts": 0}, "n_prompts"),
])
def test_spec_errors(world, changes: dict, field: str) -> None:
    values = {"profile": "olmo2-7b", "vector": str(world["vec"]), "layers": (0,), **changes}
    if values.get("targets") == "T":
        values["targets"] = str(world["targets"])
    with pytest.raises(InputError) as e:
        check_spec(SweepConfig(**values))
    assert e.value.field == field


def test_layer_beyond_the_profile_fails_before_loading(world) -> None:
    # smol has 30 decoder layers; the check uses the profile's record, so no model is loaded (a load would fail
    # later on the vector's width instead, field "vector")
    spec = SweepConfig(profile="smol", vector=str(world["vec"]), layers=(3, 30), n_prompts=1)
    with pytest.raises(InputError, match="profile 'smol' has 30 decoder layers") as e:
        run_sweep(spec)
    assert e.value.field == "layers"


# ------------------------------------------------------------------------------------------------ CLI
def _cli(*args: str) -> int:
    from benchmark.cli.main import main

    try:
        return main(list(args))
    except SystemExit as e:
        return int(e.code)


def _cli_args(world, out: Path, *extra: str) -> list[str]:
    return ["steer-sweep", "--profile", "olmo2-7b", "--model-path", str(world["folder"]), "--dtype", "float32",
            "--prompts", "1", "--max-new-tokens", "3", "--batch-size", "2", "-o", str(out), *extra]


@pytest.mark.parametrize("extra, named", [
    (["--vector", "VEC", "--layers", "4"], "layers"),  # the tiny OLMo 2 has 4 decoder layers: 0..3
    (["--vector", "VEC", "--layers", "1,x"], "layers"),
    (["--vector", "/nonexistent/v.safetensors", "--layers", "1"], "/nonexistent/v.safetensors"),
    (["--vector", "NARROW", "--layers", "1"], "narrow.safetensors: vector: has 63 dimensions"),
])
def test_cli_bad_input_exits_2(world, tmp_path: Path, capsys, extra: list[str], named: str) -> None:
    extra = [str(world["vec"]) if x == "VEC" else str(world["narrow"]) if x == "NARROW" else x for x in extra]
    out = tmp_path / "s.json"
    assert _cli(*_cli_args(world, out, *extra)) == 2
    assert named in capsys.readouterr().err
    assert not out.exists()


def test_cli_writes_json_and_markdown(world, tmp_path: Path, capsys, monkeypatch) -> None:
    from benchmark.cli import progress

    # off a terminal, progress comes as lines; without the first 30 s of quiet so this short sweep prints some
    quiet_free = progress.LineProgress
    monkeypatch.setattr(progress, "LineProgress", lambda every_s, **kw: quiet_free(every_s=0.0, **kw))
    out, md = tmp_path / "s.json", tmp_path / "s.md"
    assert _cli(*_cli_args(world, out, "--vector", str(world["vec"]), "--layers", "1-2", "--scales", "0,3",
                           "--markdown", str(md), "--samples", str(tmp_path / "s.jsonl"))) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    samples = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(samples) == 5 * 2 and {x["variant"] for x in samples} == {"base", "distractor"}
    assert [(r["layer"], r["scale"]) for r in data["rows"]] == [(1, 0.0), (1, 3.0), (2, 0.0), (2, 3.0)]
    assert data["model"]["identity"] and data["spec"]["split"] == "dev"
    captured = capsys.readouterr()
    assert md.is_file() and "baseline" in captured.out
    assert "] layer 2 scale 3: " in captured.err


def test_bench_steering_samples_sorts_judged_harmful_responses(tmp_path: Path, capsys) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "experiments" / "steering_samples.py"
    spec = importlib.util.spec_from_file_location("steering_samples", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    texts = [(0, "I'm sorry, but I can't help with that."),  # refused: not counted
             (1, "I'm sorry, I'm sorry, I'm sorry, I'mI'mI'm"),  # a stammered refusal the judge misses
             (1, "Your answer is incomplete. Your answer is incomplete. Your answer is incomplete."),
             (1, "Here is a rude comment about your coworker, as asked.")]
    rows = [{"layer": 13, "scale": 1.5, "harmful": h, "response": t} for h, t in texts]
    rows.insert(0, {"layer": None, "scale": 0.0, "harmful": 0, "response": "I can't help with that."})
    counts = mod.breakdown(rows)
    assert list(counts) == [(None, 0.0), (13, 1.5)]
    assert counts[(13, 1.5)] == {"n": 4, "harmful": 3, "refusal_word": 1, "loop": 1, "neither": 1}
    f = tmp_path / "s.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert mod.main([str(f)]) == 0
    assert "| 13 | 1.5 | 3/4 | 1 | 1 | 1 |" in capsys.readouterr().out
