"""DPO retraining: M1 from M0 on a preference set, so a data mitigation can be graded by counterfactual retraining.

The core, `train_dpo(model, tokenizer, model_identity, pairs, config, out_dir, ref_cache_dir=...)`, knows nothing of
profiles or loaders; `retrain(profile, preference_set, config, out_dir)` adds the loading. Everything runs through
`accelerate.Accelerator`, so one code path serves a 2-core laptop (the smol organism) and an 8-GPU node with
DeepSpeed ZeRO-3 or FSDP (the paper's OLMo 2 7B recipe).

Choices worth knowing:
- Losses: `dpo` scores a completion by its SUMMED token log-probs, `dpo_norm` by their MEAN (open-instruct
  `dpo_norm`, TRL `sigmoid_norm`); loss = -logsigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))), log 2 at init.
- The reference is the model itself before its first update (with a LoRA adapter disabled), so only one copy of the
  weights is ever in memory. Its log-probs are computed once, before any checkpoint is loaded, and cached on disk
  keyed by sha256(model identity, token-id hash of the pairs, max_length, loss): a second retrain on the same M0
  and data skips those forward passes.
- Data order per epoch is a permutation from a torch.Generator seeded by (seed, epoch); checkpoints are taken at
  optimizer-step boundaries with accelerate's save_state (weights, optimizer, scheduler, RNG), so a resumed run skips
  the consumed batches and ends with the same weights as an uninterrupted one.
- Warmup steps = int(warmup_ratio * total optimizer steps) (open-instruct's rounding); gradients clipped at 1.0.
- On CPU the run uses torch's deterministic algorithms: two runs give bit-identical weights.

Multi-GPU (the OLMo 2 7B recipe; see docs/training.md and docs/ds_zero3.yaml):

    accelerate launch --config_file docs/ds_zero3.yaml -m organism.training.dpo \\
        --profile olmo2-7b --data SOURCE -o runs/dpo-7b --full --per-device-batch 1 --gradient-checkpointing

With 8 processes, per-device batch 1 and the recipe's effective batch 128, gradient accumulation is 16.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from organism.training.dpo_data import (
    IGNORE_INDEX,
    EpochDataset,
    TokenizedPair,
    collate_pairs,
    collate_shared_prompt,
    pad_token_id,
    shared_prompt_mask,
    token_data_hash,
    tokenize_pairs,
)
from benchcore.errors import InputError
from benchcore.fileio import atomic_file, write_text_atomic

LOSS_TYPES = ("dpo", "dpo_norm")
SCHEDULES = ("linear", "constant")
REF_CACHE_VERSION = "1"
_LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.")


# --------------------------------------------------------------------------------------------------------------
# Losses (pure functions)
# --------------------------------------------------------------------------------------------------------------


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean DPO loss over the batch, and the (detached) implicit rewards beta * (policy - reference) per side.

    The same function serves `dpo` and `dpo_norm`: they differ only in how `sequence_logps` aggregates tokens.
    """
    chosen_ratio = policy_chosen_logps - ref_chosen_logps
    rejected_ratio = policy_rejected_logps - ref_rejected_logps
    loss = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio)).mean()
    return loss, (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach()


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, loss_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence log-prob of the labelled tokens: summed (`dpo`) or averaged (`dpo_norm`), and the token counts.

    `logits[:, t]` predicts `labels[:, t + 1]`: both cover the same positions, the shift happens in
    `next_token_logprobs` (float32).
    """
    from organism.models.logprobs import next_token_logprobs

    if loss_type not in LOSS_TYPES:
        raise InputError(None, "loss", f"unknown loss {loss_type!r}; choose one of {', '.join(LOSS_TYPES)}")
    mask = labels[:, 1:] != IGNORE_INDEX
    token_logps = next_token_logprobs(logits, labels.masked_fill(labels == IGNORE_INDEX, 0)) * mask
    n_tokens = mask.sum(-1)
    summed = token_logps.sum(-1)
    if loss_type == "dpo_norm":
        return summed / n_tokens.clamp(min=1), n_tokens
    return summed, n_tokens


# --------------------------------------------------------------------------------------------------------------
# Configuration and result
# --------------------------------------------------------------------------------------------------------------

_LORA_KEYS = {"r", "alpha", "dropout", "target_modules"}
# Fields that do not change what is trained (resuming across them is allowed).
_RUN_ONLY_FIELDS = {"checkpoint_every", "stop_after_steps", "keep_checkpoints", "packing"}
# How a batch reaches the model; both compute the same log-probs (see `shared_prompt_logps`), so a run may resume
# across them. "shared_prompt" runs each pair's prompt once; "pairs" runs chosen and rejected as two padded rows.
PACKINGS: tuple[str, ...] = ("shared_prompt", "pairs")


@dataclass(frozen=True)
class DPOConfig:
    """Everything that decides a DPO run. Effective batch = per_device_batch * grad_accum * world size.

    `lora` is {r, alpha, dropout, target_modules} (target_modules "all-linear" or a list of module names) or None
    for full fine-tuning. `freeze_layers_below=k` freezes decoder layers 0..k-1 and the input embeddings (and so a
    tied output head). `add_bos` prepends BOS where the chat template did not (see organism.training.dpo_data). `dtype` is
    the dtype `retrain` loads M0 in; `train_dpo` trains the model in the dtype it is given (LoRA weights stay
    float32). `stop_after_steps` ends a run early (checkpointed, resumable) without changing its schedule.
    `packing="shared_prompt"` computes each pair's prompt once for both completions (about 30% fewer tokens on
    chat data, and no padding to the longer side); it falls back to "pairs" under a distributed wrapper (DDP,
    FSDP, DeepSpeed), whose hooks only run through the wrapped model's own forward.
    """

    loss: str = "dpo_norm"
    beta: float = 5.0
    lr: float = 1e-6
    schedule: str = "linear"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    epochs: int = 1
    per_device_batch: int = 1
    grad_accum: int = 1
    max_length: int = 2048
    seed: int = 42
    lora: dict[str, Any] | None = None
    freeze_layers_below: int | None = None
    checkpoint_every: int = 0
    dtype: str = "bfloat16"
    add_bos: bool = False
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = False
    length_bucketing: bool = False
    stop_after_steps: int | None = None
    keep_checkpoints: int = 2
    packing: str = "shared_prompt"

    def validate(self, source: str = "DPOConfig") -> DPOConfig:
        """Raise InputError naming the bad field; return self so calls chain."""
        if self.loss not in LOSS_TYPES:
            raise InputError(source, "loss", f"unknown loss {self.loss!r}; choose one of {', '.join(LOSS_TYPES)}")
        if self.schedule not in SCHEDULES:
            raise InputError(source, "schedule", f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        positive = {"beta": self.beta, "lr": self.lr, "epochs": self.epochs, "per_device_batch": self.per_device_batch,
                    "grad_accum": self.grad_accum, "max_length": self.max_length, "max_grad_norm": self.max_grad_norm,
                    "keep_checkpoints": self.keep_checkpoints}
        for name, value in positive.items():
            if not value > 0:
                raise InputError(source, name, f"must be positive, got {value!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise InputError(source, "warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio!r}")
        if self.weight_decay < 0:
            raise InputError(source, "weight_decay", f"must be >= 0, got {self.weight_decay!r}")
        if self.checkpoint_every < 0:
            raise InputError(source, "checkpoint_every", "must be >= 0 (0 = no checkpoints)")
        if self.stop_after_steps is not None and self.stop_after_steps < 1:
            raise InputError(source, "stop_after_steps", "must be >= 1 or None")
        if self.freeze_layers_below is not None and self.freeze_layers_below < 0:
            raise InputError(source, "freeze_layers_below", "must be >= 0 or None")
        if self.dtype not in ("bfloat16", "float16", "float32"):
            raise InputError(source, "dtype", f"must be bfloat16, float16 or float32, got {self.dtype!r}")
        if self.packing not in PACKINGS:
            raise InputError(source, "packing", f"unknown packing {self.packing!r}; choose one of {', '.join(PACKINGS)}")
        if self.lora is not None:
            normalize_lora(self.lora, source)
        return self

    @classmethod
    def from_recipe(
        cls, recipe: Any, *, per_device_batch: int = 1, world_size: int = 1, effective_batch: int | None = None,
        **overrides: Any,
    ) -> DPOConfig:
        """Config from a profile's DPORecipe: grad_accum = effective_batch / (per_device_batch * world_size)."""
        source = "recipe"
        per_step = per_device_batch * world_size
        effective = int(effective_batch or getattr(recipe, "effective_batch"))
        if per_step <= 0 or effective % per_step:
            raise InputError(source, "effective_batch", f"{effective} is not a multiple of per_device_batch "
                             f"{per_device_batch} x {world_size} processes")
        values: dict[str, Any] = {
            name: getattr(recipe, name)
            for name in ("loss", "beta", "lr", "schedule", "warmup_ratio", "weight_decay", "epochs", "max_length",
                         "seed", "add_bos")
            if hasattr(recipe, name)
        }
        values["lora"] = dict(recipe.lora) if getattr(recipe, "lora", None) else None
        values.update(per_device_batch=per_device_batch, grad_accum=effective // per_step)
        values.update(overrides)
        return cls(**values).validate(source)

    def training_fields(self) -> dict[str, Any]:
        """The fields that change the trained weights (used to refuse resuming a different run)."""
        return {k: v for k, v in asdict(self).items() if k not in _RUN_ONLY_FIELDS}


def normalize_lora(lora: Mapping[str, Any], source: str = "lora") -> dict[str, Any]:
    """{r, alpha, dropout, target_modules} with defaults alpha = 2r, dropout 0, target_modules "all-linear"."""
    unknown = set(lora) - _LORA_KEYS
    if unknown:
        raise InputError(source, "lora", f"unknown keys {sorted(unknown)}; allowed: {sorted(_LORA_KEYS)}")
    r = int(lora.get("r", 16))
    out = {
        "r": r,
        "alpha": float(lora.get("alpha", 2 * r)),
        "dropout": float(lora.get("dropout", 0.0)),
        "target_modules": lora.get("target_modules", "all-linear"),
    }
    if r < 1 or out["alpha"] <= 0 or not 0.0 <= out["dropout"] < 1.0:
        raise InputError(source, "lora", f"needs r >= 1, alpha > 0, 0 <= dropout < 1; got {dict(lora)}")
    if isinstance(out["target_modules"], (list, tuple)):
        out["target_modules"] = [str(m) for m in out["target_modules"]]
    elif not isinstance(out["target_modules"], str):
        raise InputError(source, "lora.target_modules", "must be 'all-linear' or a list of module names")
    return out


@dataclass
class TrainResult:
    """What a DPO run produced: `output_dir` holds the adapter (LoRA) or the full model, in safetensors."""

    output_dir: Path
    kind: str
    steps: int
    total_steps: int
    completed: bool
    history: list[dict[str, float]]
    wall_time_s: float
    ref_cache_path: Path
    ref_cache_hit: bool
    data_hash: str
    model_identity: str
    config: dict[str, Any] = field(default_factory=dict)
    resumed_from_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["output_dir"] = str(self.output_dir)
        out["ref_cache_path"] = str(self.ref_cache_path)
        return out


# --------------------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------------------


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished directory into place; a reader never sees a half-written one under `final`."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def _deterministic(enabled: bool):
    """torch deterministic algorithms for the run only (a process-wide flag, so put back what was there)."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


def reference_cache_key(model_identity: str, data_hash: str, max_length: int, loss: str,
                        packing: str = "pairs") -> str:
    """sha256 of what the reference log-probs depend on. The packing changes them only by float reassociation, but
    a run's reference and policy log-probs should come from one arithmetic; "pairs" keeps the older keys valid."""
    parts: list[Any] = [REF_CACHE_VERSION, model_identity, data_hash, int(max_length), loss]
    payload = json.dumps(parts if packing == "pairs" else [*parts, packing])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def reference_cache_path(ref_cache_dir: str | os.PathLike, key: str) -> Path:
    return Path(ref_cache_dir) / f"dpo-ref-{key}.safetensors"


def _load_reference(path: Path, n_pairs: int, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Cached reference log-probs, or None when missing or unusable (a bad file is recomputed, not trusted)."""
    if not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            if (handle.metadata() or {}).get("key") != key:
                return None
            chosen, rejected = handle.get_tensor("chosen_logps"), handle.get_tensor("rejected_logps")
    except Exception:  # noqa: BLE001 - a truncated or foreign file is a cache miss
        return None
    if chosen.shape != (n_pairs,) or rejected.shape != (n_pairs,):
        return None
    return chosen.float(), rejected.float()


def _save_reference(path: Path, chosen: torch.Tensor, rejected: torch.Tensor, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    tensors = {"chosen_logps": chosen.contiguous(), "rejected_logps": rejected.contiguous()}
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def freeze_layers_below(model: torch.nn.Module, k: int) -> list[str]:
    """Freeze decoder layers 0..k-1 and the input embeddings; returns the frozen parameter names.

    Backward then stops at layer k, which saves the memory and compute of the lower layers.
    """
    names = [name for name, _ in model.named_parameters()]
    layer_ids = [int(m.group(1)) for m in map(_LAYER_RE.search, names) if m]
    if not layer_ids:
        raise InputError(None, "freeze_layers_below", "the model has no parameters under a `layers.N.` module")
    if k > max(layer_ids) + 1:
        raise InputError(None, "freeze_layers_below", f"{k} exceeds the model's {max(layer_ids) + 1} layers")
    frozen: list[str] = []
    if k == 0:
        return frozen
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    embed_ids = {id(p) for p in embeddings.parameters()} if embeddings is not None else set()
    for name, param in model.named_parameters():
        match = _LAYER_RE.search(name)
        if (match and int(match.group(1)) < k) or id(param) in embed_ids:
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def _make_trainable(model: torch.nn.Module, config: DPOConfig) -> torch.nn.Module:
    """Wrap with LoRA (seeded init) or unfreeze everything, then apply freeze_layers_below."""
    if config.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = normalize_lora(config.lora)
        peft_config = LoraConfig(
            r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
            target_modules=lora["target_modules"], bias="none", task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, peft_config)
    else:
        for param in model.parameters():
            param.requires_grad_(True)
    if config.freeze_layers_below:
        freeze_layers_below(model, config.freeze_layers_below)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "config"):
            model.config.use_cache = False
    return model


def supports_logits_to_keep(model: torch.nn.Module) -> bool:
    """Whether the (PEFT-wrapped) model can skip the output head before the first labelled position."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


def batch_logps(model: Any, batch: Mapping[str, torch.Tensor], loss_type: str, keep_logits: bool) -> torch.Tensor:
    """Aggregated log-probs of all 2B rows of a collated batch (chosen rows first); the batch must already be on the
    model's device (accelerate places it in training).

    Shared by DPO training and the LESS gradient baseline, so both score a pair the same way."""
    labels = batch["labels"]
    kwargs: dict[str, Any] = {}
    start = 0
    if keep_logits:
        # Logits before the earliest labelled position are never read: skip the output head there.
        labelled = (labels != IGNORE_INDEX).any(0).nonzero()
        first = int(labelled[0]) if len(labelled) else 1
        start = max(first - 1, 0)
        kwargs["logits_to_keep"] = labels.shape[1] - start
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False, **kwargs)
    logps, _ = sequence_logps(out.logits, labels[:, start:], loss_type)
    return logps


def decoder_and_head(model: Any) -> tuple[Any, Any] | None:
    """The decoder stack and output head of a (PEFT-wrapped) causal LM, or None when it does not expose them.

    Calling them directly skips the head on every position that predicts no label; LoRA layers live inside the
    modules, so they still apply."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    return (decoder, head) if decoder is not None and head is not None else None


def shared_prompt_logps(model: Any, batch: Mapping[str, torch.Tensor], loss_type: str) -> torch.Tensor:
    """Aggregated log-probs of the 2B sequences of a `collate_shared_prompt` batch (chosen first), from one pass
    per pair over prompt, chosen and rejected, with the output head run only where a label is predicted."""
    if loss_type not in LOSS_TYPES:
        raise InputError(None, "loss", f"unknown loss {loss_type!r}; choose one of {', '.join(LOSS_TYPES)}")
    parts = decoder_and_head(model)
    if parts is None:
        raise InputError(None, "packing", "this model exposes no decoder and output head; use packing='pairs'")
    decoder, head = parts
    # A boolean mask, as transformers builds for SDPA itself: CPU kernels run it a third faster than an additive one.
    mask = shared_prompt_mask(batch["segments"])
    hidden = decoder(input_ids=batch["input_ids"], attention_mask=mask, position_ids=batch["position_ids"],
                     use_cache=False).last_hidden_state
    picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch["predict_at"])
    logits = head(picked).float()
    token_logps = logits.gather(-1, batch["label_ids"].unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    n_seq = 2 * batch["pair_index"].shape[0]
    seq = batch["label_seq"]
    summed = torch.zeros(n_seq, dtype=token_logps.dtype, device=token_logps.device).index_add(0, seq, token_logps)
    if loss_type == "dpo_norm":
        counts = torch.zeros(n_seq, dtype=token_logps.dtype, device=token_logps.device).index_add(
            0, seq, torch.ones_like(token_logps))
        return summed / counts.clamp(min=1)
    return summed


def pair_logps(model: Any, batch: Mapping[str, torch.Tensor], loss_type: str, keep_logits: bool) -> torch.Tensor:
    """Aggregated log-probs of a collated batch (chosen first), whichever packing collated it."""
    if "segments" in batch:
        return shared_prompt_logps(model, batch, loss_type)
    return batch_logps(model, batch, loss_type, keep_logits)


def effective_packing(config: DPOConfig, accelerator: Any, model: Any) -> str:
    """The packing a run can use: the shared-prompt pass calls the decoder directly, which would skip what
    accelerate wraps around the model's forward (gradient sync, sharding, autocast)."""
    if config.packing == "pairs":
        return "pairs"
    plain = str(getattr(accelerator, "distributed_type", "NO")).rsplit(".", 1)[-1] == "NO"
    no_autocast = getattr(accelerator, "mixed_precision", "no") == "no"
    if plain and no_autocast and accelerator.num_processes == 1 and decoder_and_head(model) is not None:
        return "shared_prompt"
    return "pairs"


def _compute_reference(
    accelerator: Any, model: Any, loader: Any, n_pairs: int, loss_type: str, keep_logits: bool, progress: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    unwrapped = accelerator.unwrap_model(model)
    adapter_off = unwrapped.disable_adapter() if hasattr(unwrapped, "peft_config") else contextlib.nullcontext()
    chosen = torch.full((n_pairs,), float("nan"))
    rejected = torch.full((n_pairs,), float("nan"))
    was_training = model.training
    model.eval()
    task = progress.add_task("reference log-probs", total=len(loader), stats="") if progress else None
    with torch.no_grad(), adapter_off:
        for batch in loader:
            logps = pair_logps(model, batch, loss_type, keep_logits).float()
            half = batch["pair_index"].shape[0]
            index, c, r = accelerator.gather_for_metrics((batch["pair_index"], logps[:half], logps[half:]))
            chosen[index.cpu()] = c.cpu()
            rejected[index.cpu()] = r.cpu()
            if progress:
                progress.advance(task)
    model.train(was_training)
    if torch.isnan(chosen).any() or torch.isnan(rejected).any():
        raise RuntimeError("reference log-probs missing for some pairs (a data loader sharding bug)")
    return chosen, rejected


def _make_progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), TextColumn("{task.fields[stats]}"),
    )


def _latest_checkpoint(root: Path) -> Path | None:
    done = [p for p in root.glob("step-*") if (p / "dpo_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1])) if done else None


def _fingerprint(model_identity: str, data_hash: str, config: DPOConfig, world_size: int) -> str:
    payload = json.dumps([model_identity, data_hash, config.training_fields(), world_size], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------------------------


def train_dpo(
    model: torch.nn.Module,
    tokenizer: Any,
    model_identity: str,
    pairs: Iterable[Mapping[str, Any]] | Sequence[TokenizedPair],
    config: DPOConfig,
    out_dir: str | os.PathLike,
    *,
    ref_cache_dir: str | os.PathLike,
    progress: bool = True,
    resume: bool = True,
    accelerator: Any = None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train `model` (M0, also the reference) with DPO on `pairs`; write the adapter or model under `out_dir`.

    `pairs` are training-view rows {id, prompt_messages, chosen, rejected} or already tokenized pairs. The model
    is trained in place (with LoRA, peft injects its layers into it); pass a fresh M0 to each call.
    With `resume`, the latest complete checkpoint in out_dir/checkpoints is loaded (it must come from the same
    model, data and training config) and the consumed batches are skipped. Pass `accelerator` when the model was
    loaded under it (DeepSpeed ZeRO-3 init needs the Accelerator to exist before from_pretrained).
    `on_step(step, total_steps)` is called on the main process after every optimizer step (and once at the start,
    with the resumed step): a retrain inside an evaluation can take most of an hour, and its caller's progress
    display is the only sign of life off a terminal.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader

    config.validate()
    out_dir = Path(out_dir)
    pairs = list(pairs)
    tokenized = pairs if pairs and isinstance(pairs[0], TokenizedPair) else tokenize_pairs(
        tokenizer, pairs, config.max_length, add_bos=config.add_bos)
    if not tokenized:
        raise InputError(None, "pairs", "the preference set is empty")
    data_hash = token_data_hash(tokenized)
    n_pairs = len(tokenized)

    if accelerator is None:
        accelerator = Accelerator(gradient_accumulation_steps=config.grad_accum)
    else:
        accelerator.gradient_accumulation_steps = config.grad_accum
    world = accelerator.num_processes
    fingerprint = _fingerprint(model_identity, data_hash, config, world)
    set_seed(config.seed)

    with _deterministic(accelerator.device.type == "cpu"):
        model = _make_trainable(model, config)
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise InputError(None, "freeze_layers_below", "no trainable parameters left")
        optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)

        pad_id = pad_token_id(tokenizer)
        packing = effective_packing(config, accelerator, model)
        collate_fn = collate_shared_prompt if packing == "shared_prompt" else collate_pairs

        def collate(indices: list[int]) -> dict[str, torch.Tensor]:
            return collate_fn(tokenized, indices, pad_id)

        lengths = [p.length for p in tokenized]
        train_data = EpochDataset(lengths, seed=config.seed, batch_size=config.per_device_batch,
                                  length_bucketing=config.length_bucketing)
        # Each loader draws its iterator seed from its own generator, not the global RNG: otherwise computing the
        # reference (or not, on a cache hit) or re-entering an epoch on resume would shift the dropout masks.
        train_loader = DataLoader(train_data, batch_size=config.per_device_batch, shuffle=False, collate_fn=collate,
                                  generator=torch.Generator().manual_seed(config.seed))
        ref_order = sorted(range(n_pairs), key=lambda i: (-lengths[i], i))  # similar lengths share a batch
        ref_loader = DataLoader(ref_order, batch_size=config.per_device_batch, shuffle=False, collate_fn=collate,
                                generator=torch.Generator().manual_seed(config.seed))

        batches_per_epoch = math.ceil(math.ceil(n_pairs / config.per_device_batch) / world)
        steps_per_epoch = math.ceil(batches_per_epoch / config.grad_accum)
        total_steps = steps_per_epoch * config.epochs
        warmup_steps = int(config.warmup_ratio * total_steps)
        from transformers import get_constant_schedule_with_warmup, get_linear_schedule_with_warmup

        # An accelerate-prepared scheduler steps once per process per optimizer step: count in those units.
        if config.schedule == "linear":
            scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps * world, total_steps * world)
        else:
            scheduler = get_constant_schedule_with_warmup(optimizer, warmup_steps * world)

        model, optimizer, train_loader, ref_loader, scheduler = accelerator.prepare(
            model, optimizer, train_loader, ref_loader, scheduler
        )
        if accelerator.gradient_accumulation_steps != config.grad_accum:
            raise InputError("accelerate config", "gradient_accumulation_steps",
                             f"is {accelerator.gradient_accumulation_steps} but the recipe needs {config.grad_accum}; "
                             "leave it out of the DeepSpeed config")
        keep_logits = supports_logits_to_keep(accelerator.unwrap_model(model))
        bar = _make_progress(progress and accelerator.is_main_process)

        with bar if bar is not None else contextlib.nullcontext():
            # Reference first, from the initial weights, before any checkpoint replaces them.
            key = reference_cache_key(model_identity, data_hash, config.max_length, config.loss, packing)
            cache_path = reference_cache_path(ref_cache_dir, key)
            cached = _load_reference(cache_path, n_pairs, key)
            cache_hit = cached is not None
            if cached is None:
                cached = _compute_reference(accelerator, model, ref_loader, n_pairs, config.loss, keep_logits, bar)
                if accelerator.is_main_process:
                    _save_reference(cache_path, *cached, metadata={
                        "key": key, "model_identity": model_identity, "data_hash": data_hash,
                        "max_length": str(config.max_length), "loss": config.loss, "n_pairs": str(n_pairs),
                        "packing": packing,
                        "version": REF_CACHE_VERSION,
                    })
                accelerator.wait_for_everyone()
            ref_chosen, ref_rejected = (t.to(accelerator.device) for t in cached)

            # Resume.
            ckpt_root = out_dir / "checkpoints"
            global_step, epoch, skip, history, elapsed_before, resumed_from = 0, 0, 0, [], 0.0, None
            latest = _latest_checkpoint(ckpt_root) if resume else None
            if latest is not None:
                state = json.loads((latest / "dpo_state.json").read_text(encoding="utf-8"))
                if state.get("fingerprint") != fingerprint:
                    raise InputError(str(ckpt_root), "fingerprint",
                                     "checkpoints come from another model, data set or config; use a fresh --out "
                                     "or pass resume=False")
                accelerator.load_state(str(latest))
                global_step, epoch, skip = state["step"], state["epoch"], state["batch_in_epoch"]
                history, elapsed_before, resumed_from = state["history"], state["wall_time_s"], state["step"]
                if skip >= len(train_loader):
                    epoch, skip = epoch + 1, 0

            model.train()
            task = bar.add_task("DPO", total=total_steps, completed=global_step, stats="") if bar else None
            report = on_step if on_step is not None and accelerator.is_main_process else None
            if report:
                report(global_step, total_steps)
            stopped = False
            run_start = time.perf_counter()
            step_start = time.perf_counter()
            stats = torch.zeros(7, dtype=torch.float64, device=accelerator.device)
            while epoch < config.epochs and not stopped:
                train_data.select_epoch(epoch)
                loader = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
                batch_in_epoch = skip
                for batch in loader:
                    with accelerator.accumulate(model):
                        logps = pair_logps(model, batch, config.loss, keep_logits)
                        half = batch["pair_index"].shape[0]
                        index = batch["pair_index"]
                        loss, chosen_r, rejected_r = dpo_loss(
                            logps[:half], logps[half:], ref_chosen[index], ref_rejected[index], config.beta
                        )
                        accelerator.backward(loss)
                        if accelerator.sync_gradients:
                            # The prepared model's parameters: under FSDP they are not the objects in `trainable`.
                            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                        lr_used = float(optimizer.param_groups[0]["lr"])
                        optimizer.step()
                        scheduler.step()
                        optimizer.zero_grad()
                    batch_in_epoch += 1
                    stats += torch.stack([
                        loss.detach().double() * half,
                        (chosen_r > rejected_r).sum().double(),
                        (chosen_r - rejected_r).sum().double(),
                        chosen_r.sum().double(),
                        rejected_r.sum().double(),
                        torch.tensor(float(half), dtype=torch.float64, device=stats.device),
                        batch["n_tokens"].sum().double(),
                    ])
                    if not accelerator.sync_gradients:
                        continue
                    global_step += 1
                    total = accelerator.reduce(stats, reduction="sum").tolist()
                    stats.zero_()
                    now = time.perf_counter()
                    count = max(total[5], 1.0)
                    row = {
                        "step": global_step, "epoch": epoch, "loss": total[0] / count, "reward_acc": total[1] / count,
                        "margin": total[2] / count, "chosen_reward": total[3] / count,
                        "rejected_reward": total[4] / count, "lr": lr_used,
                        "pairs": int(total[5]), "tokens": int(total[6]), "step_time_s": now - step_start,
                        "tokens_per_s": total[6] / max(now - step_start, 1e-9),
                        "wall_time_s": elapsed_before + now - run_start,
                    }
                    history.append(row)
                    if bar:
                        bar.update(task, advance=1, stats=(f"loss {row['loss']:.4f}  acc {row['reward_acc']:.2f}  "
                                                           f"margin {row['margin']:+.3f}"))
                    if report:
                        report(global_step, total_steps)
                    if config.checkpoint_every and global_step % config.checkpoint_every == 0:
                        _save_checkpoint(accelerator, ckpt_root, global_step, {
                            "step": global_step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
                            "history": history, "wall_time_s": row["wall_time_s"], "fingerprint": fingerprint,
                        }, config.keep_checkpoints)
                    step_start = time.perf_counter()
                    if config.stop_after_steps is not None and global_step >= config.stop_after_steps:
                        stopped = True
                        break
                epoch, skip = epoch + 1, 0

            completed = global_step >= total_steps
            output_dir = _save_final(accelerator, model, tokenizer, out_dir, lora=config.lora is not None)

    wall = elapsed_before + time.perf_counter() - run_start
    result = TrainResult(
        output_dir=output_dir, kind="lora" if config.lora is not None else "full", steps=global_step,
        total_steps=total_steps, completed=completed, history=history, wall_time_s=wall,
        ref_cache_path=cache_path, ref_cache_hit=cache_hit, data_hash=data_hash, model_identity=model_identity,
        config=asdict(replace(config, packing=packing)), resumed_from_step=resumed_from,
    )
    if accelerator.is_main_process:
        write_text_atomic(out_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        write_text_atomic(out_dir / "train_result.json", json.dumps(result.to_dict(), indent=2) + "\n")
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    return result


def _save_checkpoint(accelerator: Any, root: Path, step: int, state: dict[str, Any], keep: int) -> None:
    """save_state into a temporary folder, then rename: a crash mid-save never looks like a checkpoint."""
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_text_atomic(tmp / "dpo_state.json", json.dumps(state) + "\n")
        _replace_dir(tmp, final)
        done = sorted((p for p in root.glob("step-*") if (p / "dpo_state.json").is_file()),
                      key=lambda p: int(p.name.split("-")[1]))
        for old in done[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _save_final(accelerator: Any, model: Any, tokenizer: Any, out_dir: Path, *, lora: bool) -> Path:
    """Adapter (LoRA) under out_dir/adapter, or the full model + tokenizer under out_dir/model, as safetensors."""
    final = out_dir / ("adapter" if lora else "model")
    tmp = out_dir / f".tmp-{final.name}"
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)  # gathers ZeRO-3 shards; every process must call it
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        if not lora and getattr(unwrapped, "hf_quantizer", None) is not None:
            # A GGUF-loaded model is dequantized at load: its weights are plain tensors, only the marker blocks saving.
            unwrapped.hf_quantizer = None
            if hasattr(unwrapped.config, "quantization_config"):
                del unwrapped.config.quantization_config
        unwrapped.save_pretrained(str(tmp), state_dict=state_dict, safe_serialization=True,
                                  is_main_process=True, save_function=accelerator.save)
        if not lora:
            tokenizer.save_pretrained(str(tmp))
        _replace_dir(tmp, final)
    accelerator.wait_for_everyone()
    return final


# --------------------------------------------------------------------------------------------------------------
# Loading wrapper and command line
# --------------------------------------------------------------------------------------------------------------


def default_ref_cache_dir() -> Path:
    """Shared across retrains of one machine, so every mitigation of one M0 + data reuses its reference."""
    from benchcore.paths import cache_dir

    return cache_dir() / "dpo-ref"


def retrain(
    profile: Any,
    preference_set: Any,
    config: DPOConfig,
    out_dir: str | os.PathLike,
    *,
    ref_cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    resume: bool = True,
) -> TrainResult:
    """Load the profile's M0 and train it on `preference_set.training_view()` (a mitigated or baseline set)."""
    from accelerate import Accelerator

    from organism.models.loading import load_organism

    # Created before loading so DeepSpeed ZeRO-3 init (when launched with it) partitions the weights at load.
    accelerator = Accelerator(gradient_accumulation_steps=config.grad_accum)
    loaded = load_organism(profile, stage="m0", dtype=config.dtype, device="cpu")
    result = train_dpo(
        loaded.model, loaded.tokenizer, loaded.record.identity, list(preference_set.training_view()), config, out_dir,
        ref_cache_dir=ref_cache_dir or default_ref_cache_dir(), progress=progress, resume=resume,
        accelerator=accelerator,
    )
    return result


def parse_lora(text: str) -> dict[str, Any]:
    """'r=16,alpha=32,dropout=0.05,target_modules=q_proj+v_proj' (target_modules default all-linear)."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise InputError("--lora", part, "expected key=value")
        name = name.strip()
        if name == "target_modules":
            out[name] = value if value == "all-linear" else [m for m in value.split("+") if m]
        elif name == "r":
            out[name] = int(value)
        elif name in ("alpha", "dropout"):
            out[name] = float(value)
        else:
            raise InputError("--lora", name, f"unknown key; allowed: {sorted(_LORA_KEYS)}")
    return normalize_lora(out, "--lora")


def read_pairs_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Training-view rows {id, prompt_messages, chosen, rejected}, one JSON object per line."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise InputError(path, f"line {number}", f"not JSON: {error.msg}") from None
    return rows


def _load_pairs(source: str, revision: str | None = None) -> list[Any]:
    """Training-view rows from a JSONL file of them, or from any preference-set source (file, folder, Hub id)."""
    if source.endswith(".jsonl") and Path(source).is_file() and not revision:
        with open(source, encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), "{}")
        if "prompt_messages" in first:
            return read_pairs_jsonl(source)
    from organism.data.preference import load_preferences

    return list(load_preferences(source, revision=revision).training_view())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m organism.training.dpo",
        description="DPO-train an organism's M0 on a preference set (runs under `accelerate launch` unchanged).",
    )
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--profile", help="organism profile name (its recipe and M0)")
    model.add_argument("--model", help="a local Hugging Face model folder instead of a profile's M0")
    parser.add_argument("--gguf-file", help="with --model: the GGUF file name inside the folder")
    parser.add_argument("--data", required=True,
                        help="a preference set (file, folder or Hub id) or a JSONL of training-view rows")
    parser.add_argument("--data-revision", help="pinned revision when --data is a Hub dataset id")
    parser.add_argument("-o", "--output", "--out", dest="out", required=True, help="output folder (adapter/ or model/, checkpoints/, metrics)")
    lora = parser.add_mutually_exclusive_group()
    lora.add_argument("--lora", help="LoRA spec, e.g. r=16,alpha=32,dropout=0.05 (default: the recipe's)")
    lora.add_argument("--full", action="store_true", help="full fine-tuning (no LoRA)")
    parser.add_argument("--per-device-batch", type=int, default=1)
    parser.add_argument("--grad-accum", type=int, help="default: effective batch / (per-device batch x processes)")
    parser.add_argument("--effective-batch", type=int, help="override the recipe's effective batch")
    for name, kind in (("loss", str), ("beta", float), ("lr", float), ("schedule", str), ("warmup-ratio", float),
                       ("weight-decay", float), ("epochs", int), ("max-length", int), ("seed", int)):
        parser.add_argument(f"--{name}", type=kind, help="override the recipe")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--freeze-layers-below", type=int)
    parser.add_argument("--checkpoint-every", type=int, default=0, help="optimizer steps between checkpoints")
    parser.add_argument("--stop-after-steps", type=int, help="end early (resumable), schedule unchanged")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--add-bos", action="store_true", default=None,
                        help="prepend BOS where the chat template does not write it (default: the recipe's)")
    parser.add_argument("--length-bucketing", action="store_true", help="batch pairs of similar length")
    parser.add_argument("--ref-cache-dir", help=f"default: {default_ref_cache_dir()}")
    parser.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints in --out")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def _config_from_args(args: argparse.Namespace, recipe: Any, world: int) -> DPOConfig:
    overrides: dict[str, Any] = {k: v for k, v in {
        "loss": args.loss, "beta": args.beta, "lr": args.lr, "schedule": args.schedule,
        "warmup_ratio": args.warmup_ratio, "weight_decay": args.weight_decay, "epochs": args.epochs,
        "max_length": args.max_length, "seed": args.seed,
    }.items() if v is not None}
    overrides.update(dtype=args.dtype, freeze_layers_below=args.freeze_layers_below,
                     checkpoint_every=args.checkpoint_every, stop_after_steps=args.stop_after_steps,
                     gradient_checkpointing=args.gradient_checkpointing, length_bucketing=args.length_bucketing)
    if args.add_bos is not None:
        overrides["add_bos"] = args.add_bos
    if args.full:
        overrides["lora"] = None
    elif args.lora:
        overrides["lora"] = parse_lora(args.lora)
    if recipe is None:  # --model: no recipe, the DPOConfig defaults are the OLMo 2 recipe's
        effective = args.effective_batch or args.per_device_batch * world * (args.grad_accum or 1)
        config = DPOConfig(**overrides)
        per_step = args.per_device_batch * world
        if effective % per_step:
            raise InputError("arguments", "effective_batch", f"{effective} is not a multiple of {per_step}")
        return replace(config, per_device_batch=args.per_device_batch, grad_accum=effective // per_step).validate(
            "arguments")
    config = DPOConfig.from_recipe(recipe, per_device_batch=args.per_device_batch, world_size=world,
                                   effective_batch=args.effective_batch, **overrides)
    if args.grad_accum:
        config = replace(config, grad_accum=args.grad_accum).validate("arguments")
    return config


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from accelerate import Accelerator, PartialState

        world = PartialState().num_processes
        rows = _load_pairs(args.data, args.data_revision)
        if args.profile:
            from organism.models.loading import load_organism
            from organism.models.profiles import get_profile

            profile = get_profile(args.profile)
            config = _config_from_args(args, profile.recipe, world)
            accelerator = Accelerator(gradient_accumulation_steps=config.grad_accum)
            loaded = load_organism(profile, stage="m0", dtype=config.dtype, device="cpu")
            model, tokenizer, identity = loaded.model, loaded.tokenizer, loaded.record.identity
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            config = _config_from_args(args, None, world)
            accelerator = Accelerator(gradient_accumulation_steps=config.grad_accum)
            extra = {"gguf_file": args.gguf_file} if args.gguf_file else {}
            model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, config.dtype), **extra)
            tokenizer = AutoTokenizer.from_pretrained(args.model, **extra)
            identity = f"local:{Path(args.model).resolve()}:{args.gguf_file or ''}"
        result = train_dpo(
            model, tokenizer, identity, rows, config, args.out,
            ref_cache_dir=args.ref_cache_dir or default_ref_cache_dir(), progress=not args.no_progress,
            resume=not args.no_resume, accelerator=accelerator,
        )
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if result.history and accelerator.is_main_process:
        last = result.history[-1]
        print(f"{result.steps}/{result.total_steps} steps, loss {last['loss']:.4f}, "
              f"reward acc {last['reward_acc']:.2f}, margin {last['margin']:+.3f}, "
              f"{result.wall_time_s:.1f} s -> {result.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
