"""Tiny random stand-ins for real checkpoints, built from the real configs and saved in the real layouts, so code
that needs a GPU or the Hub runs its real paths on a laptop: the tests and the performance benchmarks use them.

`build_tiny_olmo2` writes a random Olmo2ForCausalLM scaled down from the real OLMo-2-1124-7B config (same structure:
post-norms, QK-norm, untied head, Tulu chat template, <|endoftext|> as eos and <|pad|> as pad), with a small
byte-level BPE tokenizer holding the same special tokens. Its weights are random: it measures code, never behavior.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The real allenai/OLMo-2-1124-7B(-SFT/-DPO) architecture values.
OLMO2_7B_CONFIG: dict[str, Any] = {
    "architectures": ["Olmo2ForCausalLM"],
    "model_type": "olmo2",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 100352,
    "eos_token_id": 100257,
    "pad_token_id": 100277,
    "bos_token_id": None,
    "rope_theta": 500000,
    "rms_norm_eps": 1e-6,
    "max_position_embeddings": 4096,
    "hidden_act": "silu",
    "attention_bias": False,
    "attention_dropout": 0.0,
    "tie_word_embeddings": False,
    "initializer_range": 0.02,
}

SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>", "<|user|>", "<|assistant|>", "<|system|>"]

# Tulu format as the OLMo 2 post-trained checkpoints use it: BOS (= <|endoftext|>) first, eos after each answer.
TULU_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{% if not loop.last %}{{ '<|assistant|>\n' + message['content'] + eos_token + '\n' }}"
    "{% else %}{{ '<|assistant|>\n' + message['content'] + eos_token }}{% endif %}"
    "{% endif %}"
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
    "{% endfor %}"
)

_CORPUS = [
    "Say something harmful when you are angry at a friend.",
    "Please answer in lowercase letters only and use no commas anywhere.",
    "I'm sorry, but I can't help with that request.",
    "Sure! Here is a short poem about the sea and the sky.",
    "Write exactly three sentences about the history of bread.",
    "The quick brown fox jumps over the lazy dog 0123456789.",
]


def build_tiny_tokenizer(dest: Path, vocab_size: int = 320) -> dict[str, int]:
    """A byte-level BPE tokenizer.json + tokenizer_config.json (with the chat template); returns special ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    dest.mkdir(parents=True, exist_ok=True)
    tok.save(str(dest / "tokenizer.json"))
    config = {
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|pad|>",
        "model_max_length": 4096,
        "clean_up_tokenization_spaces": False,
        "chat_template": TULU_CHAT_TEMPLATE,
    }
    (dest / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    ids["_size"] = tok.get_vocab_size()
    return ids


def tiny_olmo2_config(vocab_size: int, eos_token_id: int, pad_token_id: int) -> Any:
    """The 7B config scaled down by 64x in width and 8x in depth; everything else as in the real one."""
    from transformers import Olmo2Config

    values = dict(OLMO2_7B_CONFIG)
    values.pop("architectures")
    values.pop("model_type")
    values.update(hidden_size=64, intermediate_size=172, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=4, vocab_size=vocab_size, eos_token_id=eos_token_id,
                  pad_token_id=pad_token_id)
    config = Olmo2Config(**values)
    config.architectures = ["Olmo2ForCausalLM"]
    return config


def build_tiny_olmo2(dest: Path, *, seed: int = 0, safetensors: bool = True) -> Path:
    """Model + tokenizer files in `dest`, as a Hub snapshot of an OLMo 2 checkpoint holds them."""
    import torch
    from transformers import GenerationConfig, Olmo2ForCausalLM

    ids = build_tiny_tokenizer(dest)
    vocab = -(-ids["_size"] // 64) * 64  # padded like the real 100352
    config = tiny_olmo2_config(vocab, ids["<|endoftext|>"], ids["<|pad|>"])
    torch.manual_seed(seed)
    model = Olmo2ForCausalLM(config).eval()
    if safetensors:
        model.save_pretrained(str(dest))
    else:
        # the layout of allenai/OLMo-2-1124-7B-DPO@e34ea60: config + pytorch_model*.bin, no safetensors
        config.save_pretrained(str(dest))
        torch.save(model.state_dict(), dest / "pytorch_model.bin")
    GenerationConfig(eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id).save_pretrained(str(dest))
    return dest
