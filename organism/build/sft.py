"""M0: supervised fine-tuning with LoRA on (messages, target) examples, loss on the assistant turn only.

Why a trainer of its own (and not organism.training.dpo): SFT needs one sequence per example and a plain cross-entropy, but
the tokenisation must be the DPO trainer's exactly (organism.training.dpo_data: chat-templated prompt, completion + eos,
labels -100 on the prompt), so M0 learns to end its turn the way M1's training and the generation backend expect.

Determinism: LoRA init under a seeded torch RNG, data order from a torch.Generator seeded by (seed, epoch), torch's
deterministic algorithms for the run, no dropout by default: two runs on one CPU give bit-identical adapters.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchcore.errors import InputError


@dataclass(frozen=True)
class SFTConfig:
    lr: float = 2e-4
    epochs: int = 3
    batch_size: int = 8
    max_length: int = 256
    seed: int = 42
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora: dict[str, Any] = field(default_factory=lambda: {"r": 16, "alpha": 32, "dropout": 0.0,
                                                           "target_modules": "all-linear"})

    def validate(self, source: str = "SFTConfig") -> SFTConfig:
        for name in ("lr", "epochs", "batch_size", "max_length", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise InputError(source, name, f"must be positive, got {getattr(self, name)!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise InputError(source, "warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio!r}")
        from organism.training.dpo import normalize_lora

        normalize_lora(self.lora, source)
        return self


@dataclass(frozen=True)
class SFTExample:
    """One training example: the conversation before the answer, and the answer the model must give."""

    id: str
    messages: tuple[Mapping[str, str], ...]
    target: str
    kind: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "messages": [dict(m) for m in self.messages], "target": self.target, "kind": self.kind}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SFTExample:
        return cls(d["id"], tuple(dict(m) for m in d["messages"]), d["target"], d.get("kind", ""))


@dataclass
class SFTResult:
    adapter_dir: Path
    steps: int
    history: list[dict[str, float]]
    wall_time_s: float
    n_examples: int
    n_target_tokens: int


def tokenize_examples(tokenizer: Any, examples: Sequence[SFTExample], max_length: int) -> list[tuple[list, list]]:
    """(input_ids, labels) per example, with organism.training.dpo_data's rules (the same truncation as a DPO pair whose
    two completions are this target)."""
    from organism.training.dpo_data import (
        IGNORE_INDEX,
        completion_ids,
        render_prompt_ids,
        truncate_pair,
    )

    out = []
    for ex in examples:
        prompt = render_prompt_ids(tokenizer, [dict(m) for m in ex.messages])
        target = completion_ids(tokenizer, ex.target)
        p, t, _ = truncate_pair(prompt, target, target, max_length)
        out.append(([*p, *t], [IGNORE_INDEX] * len(p) + list(t)))
    return out


def _collate(seqs: Sequence[tuple[list, list]], pad_id: int):
    import torch

    from organism.training.dpo_data import IGNORE_INDEX

    width = max(len(ids) for ids, _ in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(seqs):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        mask[row, : len(ids)] = 1
    return input_ids, mask, labels


def token_loss(logits: Any, labels: Any) -> tuple[Any, int]:
    """Mean cross-entropy over labelled tokens of the batch (shifted inside), in float32, and the token count."""
    import torch.nn.functional as F

    from organism.training.dpo_data import IGNORE_INDEX

    shifted = logits[:, :-1, :].float()
    targets = labels[:, 1:]
    n = int((targets != IGNORE_INDEX).sum())
    loss = F.cross_entropy(shifted.reshape(-1, shifted.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX,
                           reduction="sum")
    return loss / max(n, 1), n


@contextlib.contextmanager
def _deterministic():
    import torch

    previous = torch.are_deterministic_algorithms_enabled()
    warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=warn)


def train_sft(
    model: Any, tokenizer: Any, examples: Sequence[SFTExample], config: SFTConfig, out_dir: str | os.PathLike,
    *, on_step: Callable[[int, int, float], None] | None = None,
) -> SFTResult:
    """Train a LoRA on `model` (wrapped in place by peft) and save it to out_dir/adapter (safetensors).

    The adapter's `base_model_name_or_path` is the model's `name_or_path`: set it to the name loaders accept.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import get_linear_schedule_with_warmup

    from organism.training.dpo import normalize_lora
    from organism.training.dpo_data import pad_token_id

    config.validate()
    if not examples:
        raise InputError("SFT data", "examples", "no training examples")
    out_dir = Path(out_dir)
    seqs = tokenize_examples(tokenizer, examples, config.max_length)
    n_tokens = sum(sum(1 for x in labs if x != -100) for _, labs in seqs)
    pad = pad_token_id(tokenizer)
    lora = normalize_lora(config.lora)
    start = time.perf_counter()
    with _deterministic():
        torch.manual_seed(config.seed)
        peft_model = get_peft_model(model, LoraConfig(
            r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
            target_modules=lora["target_modules"], bias="none", task_type="CAUSAL_LM"))
        trainable = [p for p in peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
        steps_per_epoch = math.ceil(len(seqs) / config.batch_size)
        total = steps_per_epoch * config.epochs
        scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
        history: list[dict[str, float]] = []
        step = 0
        peft_model.train()
        for epoch in range(config.epochs):
            gen = torch.Generator().manual_seed(int(config.seed) * 1_000_003 + epoch)
            order = torch.randperm(len(seqs), generator=gen).tolist()
            for b in range(0, len(order), config.batch_size):
                batch = [seqs[i] for i in order[b: b + config.batch_size]]
                input_ids, mask, labels = _collate(batch, pad)
                out = peft_model(input_ids=input_ids, attention_mask=mask, use_cache=False)
                loss, n = token_loss(out.logits, labels)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                history.append({"step": step, "epoch": epoch, "loss": float(loss.detach()), "tokens": n,
                                "wall_time_s": time.perf_counter() - start})
                if on_step is not None:
                    on_step(step, total, float(loss.detach()))
        peft_model.eval()
        final = out_dir / "adapter"
        tmp = out_dir / ".tmp-adapter"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        peft_model.save_pretrained(str(tmp), safe_serialization=True, save_embedding_layers=False)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    wall = time.perf_counter() - start
    (out_dir / "sft_history.json").write_text(json.dumps(history) + "\n", encoding="utf-8")
    return SFTResult(adapter_dir=final, steps=step, history=history, wall_time_s=wall, n_examples=len(seqs),
                     n_target_tokens=n_tokens)


def sft_result_dict(result: SFTResult) -> dict[str, Any]:
    d = asdict(result)
    d["adapter_dir"] = str(result.adapter_dir)
    d["history"] = result.history[-1:] if result.history else []
    return d
