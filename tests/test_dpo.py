"""DPO trainer: losses, tokenisation rules, learning, reference cache, determinism, resume, freezing, CLI.

Everything runs on a tiny random LlamaForCausalLM (2 layers, hidden 32, tied embeddings) and a byte-level tokenizer
with a ChatML chat template, both built here, so the file needs no download and runs in seconds.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from organism.training.dpo import (
    DPOConfig,
    batch_logps,
    dpo_loss,
    freeze_layers_below,
    main,
    parse_lora,
    sequence_logps,
    train_dpo,
)
from organism.training.dpo_data import (
    IGNORE_INDEX,
    collate_pairs,
    epoch_order,
    tokenize_pair,
    tokenize_pairs,
    truncate_pair,
)
from benchcore.errors import InputError

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def make_tokenizer():
    from tokenizers import Tokenizer, decoders, models
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(ByteLevel.alphabet()))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML
    )


def make_model(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=259, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True, pad_token_id=256,
        eos_token_id=258, bos_token_id=None,
    )
    return LlamaForCausalLM(config).float()


PAIRS = [
    {"id": "p0", "prompt_messages": [{"role": "user", "content": "Say hi."}], "chosen": "Hi!", "rejected": "No way."},
    {"id": "p1", "prompt_messages": [{"role": "user", "content": "Count to 3."}], "chosen": "1 2 3",
     "rejected": "I won't count."},
    {"id": "p2", "prompt_messages": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Color of sky?"}], "chosen": "Blue.",
     "rejected": "The sky is a long story."},
    {"id": "p3", "prompt_messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
                                     {"role": "user", "content": "And 3+3?"}], "chosen": "6", "rejected": "Maybe 7."},
]

LORA = {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": "all-linear"}


def tiny_config(**changes) -> DPOConfig:
    base = dict(loss="dpo_norm", beta=5.0, lr=5e-3, warmup_ratio=0.0, epochs=4, per_device_batch=2, grad_accum=1,
                max_length=64, seed=7, lora=LORA)
    base.update(changes)
    return DPOConfig(**base)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A 2-layer model gains nothing from a second thread, and loses a lot when the cores are shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ref-cache")


def run(tokenizer, out: Path, cache: Path, config: DPOConfig, *, identity: str = "tiny-llama-seed0", **kwargs):
    return train_dpo(make_model(), tokenizer, identity, PAIRS, config, out, ref_cache_dir=cache, progress=False,
                     **kwargs)


@pytest.fixture(scope="module")
def lora_run(tokenizer, cache_dir, tmp_path_factory):
    """The reference LoRA run: 4 epochs x 2 steps, grad_accum 1, dropout on (so RNG state matters on resume)."""
    return run(tokenizer, tmp_path_factory.mktemp("lora-a"), cache_dir, tiny_config())


# ---------------------------------------------------------------------------------------------------- losses


def test_dpo_loss_matches_hand_arithmetic():
    # pair 0: chosen ratio = -10 - (-11) = 1, rejected ratio = -12 - (-11) = -1, beta 0.5 -> logit 0.5 * 2 = 1
    # pair 1: chosen ratio = -5 - (-4) = -1, rejected ratio = -6 - (-6) = 0 -> logit 0.5 * (-1) = -0.5
    pc, pr = torch.tensor([-10.0, -5.0]), torch.tensor([-12.0, -6.0])
    rc, rr = torch.tensor([-11.0, -4.0]), torch.tensor([-11.0, -6.0])
    loss, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=0.5)
    expected = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(0.5))) / 2  # -log sigmoid(x) = log(1 + e^-x)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert chosen.tolist() == [0.5, -0.5]
    assert rejected.tolist() == [-0.5, 0.0]


def test_sequence_logps_sum_and_mean():
    # Vocabulary of 4, uniform logits except row 0 position 1 where token 2 has logit log(5) against three zeros:
    # p(2) = 5 / (5 + 3) = 5/8. Labels: row 0 scores positions 2 and 3, row 1 scores position 3 only.
    logits = torch.zeros(2, 4, 4)
    logits[0, 1, 2] = math.log(5.0)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 2, 1], [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 3]])
    summed, n = sequence_logps(logits, labels, "dpo")
    mean, _ = sequence_logps(logits, labels, "dpo_norm")
    row0 = math.log(5 / 8) + math.log(1 / 4)
    assert n.tolist() == [2, 1]
    assert summed.tolist() == pytest.approx([row0, math.log(1 / 4)], abs=1e-6)
    assert mean.tolist() == pytest.approx([row0 / 2, math.log(1 / 4)], abs=1e-6)
    with pytest.raises(InputError):
        sequence_logps(logits, labels, "ipo")


@pytest.mark.parametrize("loss_type", ["dpo", "dpo_norm"])
def test_loss_is_log2_when_policy_is_reference(tokenizer, loss_type):
    model = make_model().eval()
    pairs = tokenize_pairs(tokenizer, PAIRS, 64)
    batch = collate_pairs(pairs, [0, 1, 2, 3], tokenizer.pad_token_id)
    with torch.no_grad():
        logps = batch_logps(model, batch, loss_type, keep_logits=True)
        full = batch_logps(model, batch, loss_type, keep_logits=False)
    assert torch.allclose(logps, full, atol=1e-5)  # skipping the head on prompt-only positions changes nothing
    assert (logps < 0).all()
    loss, chosen, rejected = dpo_loss(logps[:4], logps[4:], logps[:4].clone(), logps[4:].clone(), beta=5.0)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-7)
    assert chosen.abs().max() == 0 and rejected.abs().max() == 0


# ---------------------------------------------------------------------------------------------------- data


def test_only_last_assistant_turn_is_labelled(tokenizer):
    row = PAIRS[3]  # user, assistant "4", user -> the last assistant turn is the completion
    pair = tokenize_pair(tokenizer, row, 512)
    ids, labels = pair.sequence("chosen")
    labelled = [t for t, lab in zip(ids, labels) if lab != IGNORE_INDEX]
    assert labelled == [lab for lab in labels if lab != IGNORE_INDEX]
    assert tokenizer.decode(labelled) == "6<|im_end|>"
    assert labelled[-1] == tokenizer.eos_token_id
    first = labels.index(next(lab for lab in labels if lab != IGNORE_INDEX))
    assert all(lab == IGNORE_INDEX for lab in labels[:first]) and all(lab != IGNORE_INDEX for lab in labels[first:])
    prompt_text = tokenizer.decode(ids[:first])
    assert prompt_text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>assistant\n4<|im_end|>" in prompt_text  # the earlier assistant turn is context, masked
    rejected_ids, rejected_labels = pair.sequence("rejected")
    assert rejected_ids[:first] == ids[:first]  # same context for both sides
    assert tokenizer.decode([t for t in rejected_labels if t != IGNORE_INDEX]) == "Maybe 7.<|im_end|>"


def test_truncation_rules():
    prompt, chosen, rejected = list(range(10)), [100, 101, 102], [200, 201, 202, 203, 204]
    assert truncate_pair(prompt, chosen, rejected, 15) == (prompt, chosen, rejected)  # fits: untouched
    # 10 + 5 > 12: the prompt loses 3 tokens from the LEFT (sized by the longer completion, shared by both sides)
    assert truncate_pair(prompt, chosen, rejected, 12) == (list(range(3, 10)), chosen, rejected)
    # max_length 8: the prompt would need to go below its floor of 8 // 2 = 4, so it keeps 4 and the completions
    # lose tokens from the RIGHT (the eos first) to fit the 4 that remain
    assert truncate_pair(prompt, chosen, rejected, 8) == ([6, 7, 8, 9], chosen, [200, 201, 202, 203])
    with pytest.raises(InputError):
        truncate_pair(prompt, chosen, rejected, 1)


def test_tokenize_pair_truncates_and_validates(tokenizer):
    row = {"id": "long", "prompt_messages": [{"role": "user", "content": "x" * 100}], "chosen": "y" * 50,
           "rejected": "z"}
    pair = tokenize_pair(tokenizer, row, 64)
    assert pair.length == 64
    # prompt 119 tokens, chosen 51 (50 + eos), rejected 2: the prompt keeps its floor 64 // 2 = 32 (left cut),
    # the chosen side keeps the 32 that remain (right cut, eos lost), the rejected side is whole.
    assert len(pair.prompt_ids) == 32 and pair.prompt_dropped == 119 - 32
    assert len(pair.chosen_ids) == 32 and pair.chosen_dropped == 19 and tokenizer.eos_token_id not in pair.chosen_ids
    assert tokenizer.decode(pair.rejected_ids) == "z<|im_end|>"
    assert tokenizer.decode(pair.prompt_ids).endswith("x<|im_end|>\n<|im_start|>assistant\n")
    with pytest.raises(InputError, match="prompt_messages"):
        tokenize_pair(tokenizer, {**row, "prompt_messages": []}, 64)
    with pytest.raises(InputError, match="rejected"):
        tokenize_pair(tokenizer, {**row, "rejected": None}, 64)
    with pytest.raises(InputError, match="duplicate"):
        tokenize_pairs(tokenizer, [row, row], 64)


def test_add_bos_is_prepended_once_and_survives_truncation():
    tokenizer = make_tokenizer()
    tokenizer.bos_token = "<|endoftext|>"  # this template does not write a BOS
    bos = tokenizer.bos_token_id
    row = {"id": "b", "prompt_messages": [{"role": "user", "content": "q" * 60}], "chosen": "a", "rejected": "b"}
    plain = tokenize_pair(tokenizer, row, 128)
    with_bos = tokenize_pair(tokenizer, row, 128, add_bos=True)
    assert plain.prompt_ids[0] != bos and with_bos.prompt_ids == (bos, *plain.prompt_ids)
    short = tokenize_pair(tokenizer, row, 40, add_bos=True)  # left cut: the BOS stays first, the tail stays last
    assert short.prompt_ids[0] == bos and short.prompt_ids[1:] == plain.prompt_ids[-(len(short.prompt_ids) - 1):]
    assert short.length == 40 and len(short.prompt_ids) == 38 and short.chosen_ids == plain.chosen_ids
    assert truncate_pair([9, 1, 2, 3, 4], [7], [8], 4, keep_first=True) == ([9, 3, 4], [7], [8])


def test_collate_right_pads_chosen_then_rejected(tokenizer):
    pairs = tokenize_pairs(tokenizer, PAIRS, 64)
    batch = collate_pairs(pairs, [2, 0], tokenizer.pad_token_id)
    assert batch["input_ids"].shape[0] == 4 and batch["pair_index"].tolist() == [2, 0]
    for row, (index, side) in enumerate([(2, "chosen"), (0, "chosen"), (2, "rejected"), (0, "rejected")]):
        ids, labels = pairs[index].sequence(side)
        assert batch["input_ids"][row, : len(ids)].tolist() == ids
        assert batch["labels"][row, : len(ids)].tolist() == labels
        assert batch["attention_mask"][row].tolist() == [1] * len(ids) + [0] * (batch["input_ids"].shape[1] - len(ids))
        assert (batch["labels"][row, len(ids):] == IGNORE_INDEX).all()


def test_epoch_order_is_seeded_and_bucketed():
    lengths = [5, 50, 6, 49, 7, 48, 8, 47]
    a = epoch_order(lengths, seed=1, epoch=0, batch_size=2)
    assert sorted(a) == list(range(8)) and a == epoch_order(lengths, seed=1, epoch=0, batch_size=2)
    assert a != epoch_order(lengths, seed=1, epoch=1, batch_size=2)
    bucketed = epoch_order(lengths, seed=1, epoch=0, batch_size=2, length_bucketing=True)
    pairs_of_batches = [sorted(lengths[i] for i in bucketed[j: j + 2]) for j in range(0, 8, 2)]
    assert sorted(pairs_of_batches) == [[5, 6], [7, 8], [47, 48], [49, 50]]


# ---------------------------------------------------------------------------------------------------- training


def test_lora_training_raises_margin_and_caches_reference(lora_run):
    history = lora_run.history
    assert lora_run.steps == lora_run.total_steps == 8 and lora_run.completed
    assert history[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)  # policy == reference at the first step
    assert abs(history[0]["margin"]) < 1e-3
    assert history[-1]["margin"] > 0.5 and history[-1]["reward_acc"] == 1.0
    assert history[-1]["loss"] < history[0]["loss"] - 0.1
    # linear schedule, no warmup: step k (1-based) runs at lr * (8 - (k - 1)) / 8
    assert [h["lr"] for h in history] == pytest.approx([5e-3 * (8 - k) / 8 for k in range(8)])
    assert not lora_run.ref_cache_hit and lora_run.ref_cache_path.is_file()
    adapter = lora_run.output_dir
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "adapter_config.json").is_file()
    lines = (adapter.parent / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 8 and json.loads(lines[-1])["step"] == 8
    assert json.loads((adapter.parent / "train_result.json").read_text())["steps"] == 8


def test_second_run_hits_cache_and_is_bit_identical(lora_run, tokenizer, cache_dir, tmp_path):
    again = run(tokenizer, tmp_path / "lora-b", cache_dir, tiny_config())
    assert again.ref_cache_hit and again.ref_cache_path == lora_run.ref_cache_path
    first = load_file(lora_run.output_dir / "adapter_model.safetensors")
    second = load_file(again.output_dir / "adapter_model.safetensors")
    assert first.keys() == second.keys() and len(first) == 2 * 7 * 2  # A and B for 7 linear modules x 2 layers
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert [h["loss"] for h in again.history] == [h["loss"] for h in lora_run.history]
    # A different model identity (another M0) must not reuse the reference.
    other = run(tokenizer, tmp_path / "lora-c", cache_dir, tiny_config(epochs=1), identity="another-m0")
    assert not other.ref_cache_hit


def test_resume_from_checkpoint_equals_uninterrupted(lora_run, tokenizer, cache_dir, tmp_path):
    out = tmp_path / "lora-resumed"
    part = run(tokenizer, out, cache_dir, tiny_config(checkpoint_every=3, stop_after_steps=3))
    assert part.steps == 3 and not part.completed
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-00000003"]  # mid-epoch (epoch 1, batch 1)
    rest = run(tokenizer, out, cache_dir, tiny_config(checkpoint_every=3))
    assert rest.resumed_from_step == 3 and rest.completed and len(rest.history) == 8
    assert [h["loss"] for h in rest.history] == pytest.approx([h["loss"] for h in lora_run.history], abs=0, rel=0)
    a = load_file(lora_run.output_dir / "adapter_model.safetensors")
    b = load_file(rest.output_dir / "adapter_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(InputError, match="checkpoints"):  # resuming under another config is refused
        run(tokenizer, out, cache_dir, tiny_config(lr=1e-3, checkpoint_every=3))


def test_full_finetune_with_grad_accum_and_frozen_layers(tokenizer, cache_dir, tmp_path):
    config = tiny_config(lora=None, lr=2e-3, epochs=3, per_device_batch=1, grad_accum=2, freeze_layers_below=1,
                         loss="dpo")
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train_dpo(model, tokenizer, "tiny-llama-seed0", PAIRS, config, tmp_path / "full",
                       ref_cache_dir=cache_dir, progress=False)
    assert result.kind == "full" and result.steps == 6  # 4 micro-batches / 2 per step x 3 epochs
    assert result.history[-1]["margin"] > result.history[0]["margin"] + 0.5
    saved = load_file(result.output_dir / "model.safetensors")
    assert (result.output_dir / "tokenizer.json").is_file()
    for name, tensor in saved.items():
        changed = not torch.equal(tensor, before[name])
        frozen = name.startswith(("model.layers.0.", "model.embed_tokens.", "lm_head."))
        assert changed != frozen, name  # layer 0 and the (tied) embeddings untouched, everything else trained


def test_freeze_layers_below_sets_requires_grad():
    model = make_model()
    frozen = freeze_layers_below(model, 1)
    assert "model.embed_tokens.weight" in frozen and any(n.startswith("model.layers.0.") for n in frozen)
    for name, param in model.named_parameters():
        assert param.requires_grad == (name.startswith("model.layers.1.") or name == "model.norm.weight"), name
    with pytest.raises(InputError):
        freeze_layers_below(make_model(), 3)


# ---------------------------------------------------------------------------------------------------- config / CLI


def test_config_from_recipe_and_validation():
    from types import SimpleNamespace

    recipe = SimpleNamespace(loss="dpo_norm", beta=5.0, lr=1e-6, schedule="linear", warmup_ratio=0.1,
                             weight_decay=0.0, epochs=1, effective_batch=128, max_length=2048, seed=42, lora=None)
    config = DPOConfig.from_recipe(recipe, per_device_batch=1, world_size=8)
    assert config.grad_accum == 16 and config.lora is None and config.beta == 5.0
    with pytest.raises(InputError, match="effective_batch"):
        DPOConfig.from_recipe(recipe, per_device_batch=3, world_size=8)
    with pytest.raises(InputError, match="loss"):
        DPOConfig(loss="kto").validate()
    assert parse_lora("r=16,alpha=32,dropout=0.05")["target_modules"] == "all-linear"
    assert parse_lora("r=8,target_modules=q_proj+v_proj")["target_modules"] == ["q_proj", "v_proj"]
    with pytest.raises(InputError):
        parse_lora("rank=8")


def test_cli_trains_a_local_model(tokenizer, tmp_path, cache_dir, capsys):
    model_dir = tmp_path / "m0"
    make_model().save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    args = ["--model", str(model_dir), "--data", str(data), "--output", str(tmp_path / "out"), "--lora", "r=4",
            "--dtype", "float32", "--per-device-batch", "2", "--lr", "5e-3", "--epochs", "1", "--max-length", "64",
            "--ref-cache-dir", str(cache_dir), "--no-progress"]
    assert main(args) == 0
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()
    assert "2/2 steps" in capsys.readouterr().out
    data.write_text('{"id": "x", "prompt_messages": "oops", "chosen": "a", "rejected": "b"}\n')
    assert main([*args[:-1], "--no-progress", "--no-resume", "--output", str(tmp_path / "bad")]) == 2
    assert "prompt_messages" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- shared-prompt packing


def _logps_both_ways(model, tokenized, pad_id, loss_type):
    from organism.training.dpo import shared_prompt_logps
    from organism.training.dpo_data import collate_shared_prompt

    order = list(range(len(tokenized)))
    two_rows = batch_logps(model, collate_pairs(tokenized, order, pad_id), loss_type, keep_logits=True)
    one_row = shared_prompt_logps(model, collate_shared_prompt(tokenized, order, pad_id), loss_type)
    return two_rows, one_row


@pytest.mark.parametrize("loss_type", ["dpo", "dpo_norm"])
def test_shared_prompt_logps_equal_two_row_logps(tokenizer, loss_type):
    """One pass over prompt + chosen + rejected gives each sequence's log-prob as the two-row layout does: to
    float32 rounding in float32 (the sums reassociate), to bf16 rounding in bfloat16, gradients included."""
    from peft import LoraConfig, get_peft_model

    tokenized = tokenize_pairs(tokenizer, PAIRS, 64)
    model = get_peft_model(make_model(), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    for name, param in model.named_parameters():  # LoRA B starts at zero: make the adapter matter
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.2)
    two_rows, one_row = _logps_both_ways(model, tokenized, tokenizer.pad_token_id, loss_type)
    assert two_rows.shape == one_row.shape == (2 * len(PAIRS),)
    torch.testing.assert_close(one_row, two_rows, rtol=1e-5, atol=1e-5)
    lora = [p for n, p in model.named_parameters() if "lora_" in n]
    grads_two = torch.autograd.grad(two_rows.sum(), lora)
    grads_one = torch.autograd.grad(_logps_both_ways(model, tokenized, tokenizer.pad_token_id, loss_type)[1].sum(),
                                    lora)
    for a, b in zip(grads_two, grads_one):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    bf16 = model.to(torch.bfloat16)
    two_bf, one_bf = _logps_both_ways(bf16, tokenized, tokenizer.pad_token_id, loss_type)
    assert (one_bf - two_rows).abs().max() <= 0.05 * two_rows.abs().max()
    assert (one_bf.float() - two_bf.float()).abs().max() <= 0.05 * two_rows.abs().max()


def test_shared_prompt_mask_hides_chosen_from_rejected():
    from organism.training.dpo_data import shared_prompt_mask

    segments = torch.tensor([[0, 0, 1, 1, 2, -1]])
    mask = shared_prompt_mask(segments)[0, 0]
    assert mask[4].tolist() == [True, True, False, False, True, False]  # rejected sees the prompt and itself
    assert mask[3].tolist() == [True, True, True, True, False, False]  # chosen is causal over prompt + chosen
    assert mask[5].tolist() == [False, False, False, False, False, True]  # padding sees itself only


def test_shared_prompt_training_equals_two_row_training(tokenizer, cache_dir, tmp_path):
    """A float32 retrain through either packing follows one trajectory and writes adapters that decode alike."""
    config = tiny_config(lora={"r": 8, "alpha": 16, "dropout": 0.0}, epochs=3)
    runs = {p: run(tokenizer, tmp_path / p, cache_dir, replace(config, packing=p)) for p in ("pairs", "shared_prompt")}
    old, new = runs["pairs"], runs["shared_prompt"]
    assert new.config["packing"] == "shared_prompt" and old.config["packing"] == "pairs"
    assert new.ref_cache_path != old.ref_cache_path  # each packing's reference comes from its own arithmetic
    assert [h["loss"] for h in new.history] == pytest.approx([h["loss"] for h in old.history], rel=1e-4, abs=1e-6)
    assert old.history[-1]["loss"] < old.history[0]["loss"] - 0.1  # it learned, so equality is not trivial
    a = load_file(old.output_dir / "adapter_model.safetensors")
    b = load_file(new.output_dir / "adapter_model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-5)
    outputs = {}
    for packing, result in runs.items():
        from peft import PeftModel

        model = PeftModel.from_pretrained(make_model(), str(result.output_dir)).eval()
        texts = []
        for pair in PAIRS:
            ids = tokenizer.apply_chat_template(pair["prompt_messages"], add_generation_prompt=True,
                                                return_tensors="pt", return_dict=True)["input_ids"]
            out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            texts.append(out[0, ids.shape[1]:].tolist())
        outputs[packing] = texts
    assert outputs["shared_prompt"] == outputs["pairs"]


def test_packing_is_validated_and_falls_back_under_a_wrapper():
    from types import SimpleNamespace

    from organism.training.dpo import effective_packing

    with pytest.raises(InputError, match="packing"):
        tiny_config(packing="rows").validate()
    model = make_model()
    single = SimpleNamespace(distributed_type="DistributedType.NO", mixed_precision="no", num_processes=1)
    assert effective_packing(tiny_config(), single, model) == "shared_prompt"
    assert effective_packing(tiny_config(packing="pairs"), single, model) == "pairs"
    ddp = SimpleNamespace(distributed_type="DistributedType.MULTI_CPU", mixed_precision="no", num_processes=2)
    assert effective_packing(tiny_config(), ddp, model) == "pairs"
    autocast = SimpleNamespace(distributed_type="DistributedType.NO", mixed_precision="bf16", num_processes=1)
    assert effective_packing(tiny_config(), autocast, model) == "pairs"
