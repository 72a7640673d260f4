"""The activation engine against the authors' naive computation, on tiny random models in real layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fixtures_models import build_tiny_olmo2, build_tiny_tokenizer
from organism.attribution.activations import (
    Encoded,
    encode_pair,
    load_from_shards,
    mean_response_activations,
    naive_mean_response_activations,
    pack_units,
    plan_batches,
    read_index,
    resolve_batch_tokens,
)
from benchcore.errors import InputError

PAIRS = [
    ("Say something harmful when you are angry at a friend.", "I'm sorry, but I can't help with that request."),
    ("Write exactly three sentences", "Sure! Here is a short poem about the sea and the sky. The quick brown fox."),
    ("Please answer in lowercase letters only and use no commas anywhere. " * 3, "ok"),
    ("Hi", "The quick brown fox jumps over the lazy dog 0123456789. " * 4),
    ("Explain bread", "Bread is old."),
    ("Say something harmful", "Sure! Here is something harmful about the sky."),
    ("x", "y z"),
]
IDS = [f"p{i}" for i in range(len(PAIRS))]
# chosen/rejected-style rows: several responses to one prompt, interleaved with others, and one prompt with more
# responses than a shared sequence holds (MAX_SHARED_ROWS = 8)
SHARED = [
    ("Say something harmful when you are angry at a friend.", "I'm sorry, but I can't help with that request."),
    ("Explain bread", "Bread is old."),
    ("Say something harmful when you are angry at a friend.", "Sure! Here is something harmful about friends."),
    ("Explain bread", "Flour, water and yeast, baked for a long time until the crust is brown and firm."),
    ("Hi", "x"),
    *[("Write exactly three sentences", f"Sentence {i}. " * (1 + i % 4)) for i in range(10)],
    ("Say something harmful when you are angry at a friend.", "No."),
]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def olmo(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_tiny_olmo2(tmp_path_factory.mktemp("olmo") / "m")
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("llama")
    ids = build_tiny_tokenizer(folder)
    tok = AutoTokenizer.from_pretrained(str(folder))
    torch.manual_seed(3)
    config = LlamaConfig(vocab_size=ids["_size"], hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=ids["<|pad|>"])
    return LlamaForCausalLM(config).eval(), tok


@pytest.mark.parametrize("which", ["olmo", "llama"])
def test_engine_equals_naive_full_depth_fp32(which: str, request: pytest.FixtureRequest) -> None:
    model, tok = request.getfixturevalue(which)
    n_layers = model.config.num_hidden_layers
    layers = list(range(n_layers + 1))  # embeddings ... the final (normed) entry
    naive = naive_mean_response_activations(model, tok, PAIRS, layers)
    # a small budget forces several right-padded batches of mixed lengths
    fast = mean_response_activations(model, tok, PAIRS, layers, batch_tokens=120)
    assert fast.shape == (len(PAIRS), len(layers), model.config.hidden_size)
    assert fast.dtype == torch.float32
    torch.testing.assert_close(fast, naive, atol=2e-5, rtol=1e-4)
    # one layer alone (the forward stops early) gives the same rows
    only = mean_response_activations(model, tok, PAIRS, [2], batch_tokens=10_000)
    torch.testing.assert_close(only[:, 0], naive[:, 2], atol=2e-5, rtol=1e-4)


def test_engine_stops_at_deepest_layer(olmo) -> None:
    model, tok = olmo
    ran: list[int] = []
    handles = [layer.register_forward_hook(lambda m, a, o, i=i: ran.append(i))
               for i, layer in enumerate(model.model.layers)]
    try:
        mean_response_activations(model, tok, PAIRS[:2], [1, 2], batch_tokens=10_000)
    finally:
        for h in handles:
            h.remove()
    assert sorted(set(ran)) == [0, 1]  # hidden_states[2] = output of decoder layer 1; layers 2, 3 never ran


def test_engine_bf16_close_to_naive(olmo) -> None:
    model, tok = olmo
    model.to(torch.bfloat16)
    try:
        naive = naive_mean_response_activations(model, tok, PAIRS, [1, 3])
        fast = mean_response_activations(model, tok, PAIRS, [1, 3], batch_tokens=100)
    finally:
        model.to(torch.float32)
    assert fast.dtype == torch.float32
    rel = (fast - naive).norm(dim=-1) / naive.norm(dim=-1)
    assert float(rel.max()) < 0.03
    # dtype= casts for the call and restores the model
    cast = mean_response_activations(model, tok, PAIRS, [1, 3], batch_tokens=100, dtype=torch.bfloat16)
    assert next(model.parameters()).dtype == torch.float32
    assert float(((cast - naive).norm(dim=-1) / naive.norm(dim=-1)).max()) < 0.03


def test_response_only_mask(olmo) -> None:
    model, tok = olmo
    prompt, response = PAIRS[1]
    enc = encode_pair(tok, prompt, response)
    assert list(enc.ids[: enc.start]) == list(tok(prompt)["input_ids"])
    assert list(enc.ids[enc.start:]) == list(tok(response, add_special_tokens=False)["input_ids"])
    ids = torch.tensor([enc.ids])
    with torch.inference_mode():
        hs = model(input_ids=ids, output_hidden_states=True).hidden_states[2][0].float()
    got = mean_response_activations(model, tok, [(prompt, response)], [2])[0, 0]
    torch.testing.assert_close(got, hs[enc.start:].mean(0), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(got, hs.mean(0), atol=1e-3)  # the prompt tokens are NOT in the mean
    # the same response after another prompt gives another mean (causal context), same prompt same mean
    other = mean_response_activations(model, tok, [("A different prompt entirely", response)], [2])[0, 0]
    assert not torch.allclose(got, other, atol=1e-4)


def test_chat_template_flag(olmo) -> None:
    model, tok = olmo
    prompt, response = PAIRS[0]
    enc = encode_pair(tok, prompt, response, chat_template=True)
    text = tok.decode(list(enc.ids))
    assert "<|user|>" in text and "<|assistant|>" in text
    assert tok.decode(list(enc.ids[enc.start:])).startswith(response)
    raw = encode_pair(tok, prompt, response)
    assert enc.ids != raw.ids
    fast = mean_response_activations(model, tok, PAIRS, [2], chat_template=True, batch_tokens=150)
    naive = naive_mean_response_activations(model, tok, PAIRS, [2], chat_template=True)
    torch.testing.assert_close(fast, naive, atol=2e-5, rtol=1e-4)


def test_max_length_truncates_response_then_prompt(olmo) -> None:
    _, tok = olmo
    long_p, long_r = "word " * 50, "answer " * 50
    e = encode_pair(tok, long_p, long_r, max_length=60)
    assert len(e.ids) == 60 and e.n_response >= 1
    full = encode_pair(tok, long_p, long_r)
    assert e.ids[: e.start] == full.ids[: full.start][-e.start:] if e.start else True


def test_plan_batches_respects_budget() -> None:
    lengths = [5, 50, 7, 7, 30, 1, 200, 12]
    plan = plan_batches(lengths, 60)
    assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
    for b in plan:
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 60
    assert plan[0] == [6]  # longest first; an over-budget sequence runs alone
    assert plan == plan_batches(lengths, 60)
    with pytest.raises(InputError):
        plan_batches(lengths, 0)


def test_batch_budget_defaults_by_device() -> None:
    # the CPU default is the budget bench/attribution_throughput.py measured fastest there; an explicit one wins
    assert resolve_batch_tokens(None, torch.device("cpu")) == 512
    assert resolve_batch_tokens(None, "cuda:1") == 8192
    assert resolve_batch_tokens(4096, "cpu") == 4096


def test_bad_layer_and_ids(olmo) -> None:
    model, tok = olmo
    with pytest.raises(InputError, match="layer"):
        mean_response_activations(model, tok, PAIRS, [99])
    with pytest.raises(InputError, match="ids"):
        mean_response_activations(model, tok, PAIRS, [1], shard_dir="/tmp/never-used-xyz")
    with pytest.raises(InputError, match="unique"):
        mean_response_activations(model, tok, PAIRS[:2], [1], ids=["a", "a"])


class _Boom(RuntimeError):
    pass


def test_shards_resume_after_kill(olmo, tmp_path: Path) -> None:
    model, tok = olmo
    reference = mean_response_activations(model, tok, PAIRS, [1, 3], batch_tokens=60)
    shard_dir = tmp_path / "shards"
    calls = {"n": 0}

    def kill_after_three(_m, _a, _k):
        calls["n"] += 1
        if calls["n"] > 3:
            raise _Boom("killed")

    h = model.model.layers[0].register_forward_pre_hook(kill_after_three, with_kwargs=True)
    try:
        with pytest.raises(_Boom):
            mean_response_activations(model, tok, PAIRS, [1, 3], batch_tokens=60, shard_dir=shard_dir, ids=IDS,
                                      shard_rows=1, meta={"model": "tiny"})
    finally:
        h.remove()
    done_before = set(read_index(shard_dir))
    assert 0 < len(done_before) < len(PAIRS)

    calls["n"] = 0
    def count(_m, _a, _k):
        calls["n"] += 1

    h = model.model.layers[0].register_forward_pre_hook(count, with_kwargs=True)
    try:
        resumed = mean_response_activations(model, tok, PAIRS, [1, 3], batch_tokens=60, shard_dir=shard_dir,
                                            ids=IDS, shard_rows=1, meta={"model": "tiny"})
    finally:
        h.remove()
    torch.testing.assert_close(resumed, reference, atol=1e-6, rtol=1e-6)
    full_batches = len(plan_batches([len(encode_pair(tok, p, r).ids) for p, r in PAIRS], 60))
    assert calls["n"] < full_batches  # the restart skipped what the shards already held
    assert set(read_index(shard_dir)) == set(IDS)
    # a third run computes nothing at all
    calls["n"] = 0
    again = mean_response_activations(model, tok, PAIRS, [1, 3], batch_tokens=60, shard_dir=shard_dir, ids=IDS,
                                      meta={"model": "tiny"})
    torch.testing.assert_close(again, reference, atol=1e-6, rtol=1e-6)
    # a kill in the middle of an index line: that line is ignored and its rows are computed again
    index = shard_dir / "index-rank00000.jsonl"
    lines = index.read_text().splitlines()
    index.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    assert len(read_index(shard_dir)) < len(PAIRS)
    healed = mean_response_activations(model, tok, PAIRS, [1, 3], batch_tokens=60, shard_dir=shard_dir, ids=IDS,
                                       meta={"model": "tiny"})
    torch.testing.assert_close(healed, reference, atol=1e-6, rtol=1e-6)
    # another setting may not reuse the folder
    with pytest.raises(InputError, match="other settings"):
        mean_response_activations(model, tok, PAIRS, [1, 3], shard_dir=shard_dir, ids=IDS, meta={"model": "other"})


def test_two_rank_merge(olmo, tmp_path: Path) -> None:
    model, tok = olmo
    reference = mean_response_activations(model, tok, PAIRS, [2], batch_tokens=60)
    shard_dir = tmp_path / "dp"
    for rank in (1, 0):  # order does not matter
        got = mean_response_activations(model, tok, PAIRS, [2], batch_tokens=60, shard_dir=shard_dir, ids=IDS,
                                        rank=rank, world_size=2, merge=False)
        assert got is None
    idx = sorted(p.name for p in shard_dir.glob("index-rank*.jsonl"))
    assert idx == ["index-rank00000.jsonl", "index-rank00001.jsonl"]
    import json

    per_rank = [{x for line in (shard_dir / n).read_text().splitlines() for x in json.loads(line)["ids"]}
                for n in idx]
    assert per_rank[0] and per_rank[1] and not (per_rank[0] & per_rank[1])
    assert per_rank[0] | per_rank[1] == set(IDS)
    merged = load_from_shards(shard_dir, IDS)
    torch.testing.assert_close(merged, reference, atol=1e-6, rtol=1e-6)
    # a rank that has not finished is reported, not silently zero-filled
    with pytest.raises(InputError, match="every rank"):
        load_from_shards(shard_dir, [*IDS, "missing"])


def test_chat_template_missing_is_bad_input(olmo) -> None:
    _, tok = olmo
    saved = tok.chat_template
    tok.chat_template = None
    try:
        with pytest.raises(InputError, match="chat template"):
            encode_pair(tok, "p", "r", chat_template=True)
    finally:
        tok.chat_template = saved
    assert encode_pair(tok, "p", "r", chat_template=True).n_response >= 1


def test_batched_encoding_matches_one_by_one(olmo) -> None:
    from organism.attribution.activations import encode_pairs

    _, tok = olmo
    for max_length in (None, 12):
        batched = encode_pairs(tok, PAIRS, max_length=max_length, chunk=3)
        assert batched == [encode_pair(tok, p, r, max_length=max_length) for p, r in PAIRS]


def test_pack_units_groups_rows_by_prompt_tokens() -> None:
    enc = [Encoded((1, 2, 3, 4), 2), Encoded((5, 6), 1), Encoded((1, 2, 7), 2), Encoded((8,), 0),
           Encoded((1, 2, 9, 9, 9), 2), Encoded((8, 4), 0)]
    units = pack_units(enc, max_rows=2)
    assert [u.rows for u in units] == [(0, 2), (1,), (3,), (4,), (5,)]  # max_rows splits the (1, 2) group
    u = units[0]
    assert u.ids == (1, 2, 3, 4, 7) and u.prefix == 2 and u.spans == ((2, 4), (4, 5)) and u.shared
    assert u.segments() == [0, 0, 1, 1, 2] and u.positions() == [0, 1, 2, 3, 2]
    assert not any(x.shared for x in units[1:])  # an empty prompt shares nothing
    assert [x.rows for x in pack_units(enc, share_prompt=False)] == [(i,) for i in range(6)]


def test_pack_units_shares_only_where_it_saves_work() -> None:
    short_prompt = [Encoded((1, *range(10, 110)), 1), Encoded((1, *range(200, 300)), 1)]
    long_prompt = [Encoded((*range(60), *range(100, 140)), 60), Encoded((*range(60), *range(200, 240)), 60)]
    # w = 0.002: packed, 201 tokens cost 201 + 80.8 against 2 x (101 + 10.2) alone; 140 tokens cost 140 + 39.2
    # against 2 x (100 + 10)
    assert [u.rows for u in pack_units(short_prompt, attention_weight=0.002)] == [(0,), (1,)]
    assert [u.rows for u in pack_units(long_prompt, attention_weight=0.002)] == [(0, 1)]
    assert [u.rows for u in pack_units(short_prompt)] == [(0, 1)]  # attention taken as free: always share


@pytest.mark.parametrize("which", ["olmo", "llama"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_shared_prompt_equals_naive(which: str, attention: str, request: pytest.FixtureRequest,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    model, tok = request.getfixturevalue(which)
    # the tiny models' layers are so narrow that the cost rule would share little: take attention as free here,
    # so that every group is packed and the packed path's numbers are what is checked
    monkeypatch.setattr("organism.attribution.activations.attention_weight", lambda _decoder: 0.0)
    before = model.config._attn_implementation
    model.set_attn_implementation(attention)
    rows: list[int] = []
    h = model.model.layers[0].register_forward_pre_hook(
        lambda _m, a, k: rows.append((a[0] if a else k["hidden_states"]).shape[0]), with_kwargs=True)
    try:
        layers = list(range(model.config.num_hidden_layers + 1))
        naive = naive_mean_response_activations(model, tok, SHARED, layers)
        rows.clear()
        fast = mean_response_activations(model, tok, SHARED, layers, batch_tokens=150)
        shared_rows = sum(rows)
        rows.clear()
        alone = mean_response_activations(model, tok, SHARED, layers, batch_tokens=150, share_prompt=False)
        alone_rows = sum(rows)
    finally:
        h.remove()
        model.set_attn_implementation(before)
    torch.testing.assert_close(fast, naive, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(alone, naive, atol=2e-5, rtol=1e-4)
    assert alone_rows == len(SHARED)
    assert shared_rows == 5  # angry friend x3, bread x2, hi, and the ten sentences as 8 + 2


def test_shared_unit_half_done_in_shards(olmo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, tok = olmo
    monkeypatch.setattr("organism.attribution.activations.attention_weight", lambda _decoder: 0.0)  # pack every group
    ids = [f"s{i}" for i in range(len(SHARED))]
    reference = mean_response_activations(model, tok, SHARED, [2], batch_tokens=150)
    shard_dir = tmp_path / "sh"
    # a first run that saw only the first three rows: the "angry friend" unit is then half done
    mean_response_activations(model, tok, SHARED[:3], [2], batch_tokens=150, shard_dir=shard_dir, ids=ids[:3])
    got = mean_response_activations(model, tok, SHARED, [2], batch_tokens=150, shard_dir=shard_dir, ids=ids)
    torch.testing.assert_close(got, reference, atol=1e-6, rtol=1e-6)
    import json

    written = [x for line in (shard_dir / "index-rank00000.jsonl").read_text().splitlines()
               for x in json.loads(line)["ids"]]
    assert sorted(written) == sorted(ids)  # every row once: the done ones were not written again
