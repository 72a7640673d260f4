"""Gradient baseline, LESS-style (LESS by Xia et al. 2024, adapted to DPO), producing a Ranking.

Steps, and why each is there:
1. Warm-up. A short LoRA DPO run from M0 on a seeded random `warmup_fraction` of the mix (at least
   `min_warmup_pairs`), `checkpoints` epochs, with a checkpoint (LoRA weights + AdamW's exp_avg_sq + step count +
   the epoch's mean learning rate) taken after each epoch. LESS needs a model that has started to learn the data:
   at initialisation the LoRA B matrices are zero, the gradients w.r.t. A vanish, and there is no Adam state to
   precondition with. The reference of the DPO loss is M0 itself (the adapter disabled), as in organism.training.dpo.
2. Per-pair gradients. For every pair and checkpoint: the gradient of its DPO loss (`dpo_norm` by default, the
   recipe's loss) w.r.t. the LoRA weights (per-example gradients, as LESS computes them). LESS takes them a pair
   at a time; here `gradient_batch` pairs can share a forward and backward pass, each pair's own gradient read
   off the LoRA Linears (LoraTaps): the same numbers. The default is by device (default_gradient_batch): on CPU
   one pair per pass measured fastest (bench/gradient_batching.py on SmolLM2: batch 8 took 2.4x the time of
   batch 1; not profiled further), while an accelerator at batch 1 waits on kernel launches.
3. Preconditioning. Training pairs get Adam's view of their gradient, g / (sqrt(v_hat) + eps) with v_hat the
   checkpoint's bias-corrected exp_avg_sq: the direction an Adam step on that pair would move the weights. The
   target pairs keep their plain gradients (LESS: the target side is the loss being reduced, not a step).
4. Projection. A seeded count-sketch to `dim` coordinates (every LoRA coordinate goes to one random bucket with a
   random sign): a sparse Johnson-Lindenstrauss projection that keeps inner products in expectation at O(LoRA
   weights) per pair; a dense Gaussian/Rademacher matrix (what LESS runs on GPU) would cost O(weights x dim),
   about 2e10 multiply-adds per pair for SmolLM2 with r=16 at dim 8192. The same sketch serves every checkpoint.
   Default dim 8192: the paper's (and LESS's best) setting; with a count-sketch the compute does not grow with the
   dim (only the stored target matrix does), while the sketch's noise on a cosine shrinks as 1/sqrt(dim), which
   at 1024 (about 0.03) is of the order of the cosines being compared.
5. Score. Unit-normalised, score(d) = sum_c lr_c * agg_j cos(P g_c(d), P g_c(t_j)) / sum_c lr_c, agg = mean over the
   target pairs (the paper's "mean cosine with the gradients of the target pairs") or max; lr_c is the checkpoint's
   mean learning rate (LESS weights checkpoints by it; the weighted mean ranks as LESS's weighted sum does).

The sign. LESS asks: does a training step on d lower the loss of the target? A step on d moves the weights by
-lr * Gamma(g_d), which changes the target loss by -lr * <g_t, Gamma(g_d)>: a POSITIVE cosine means training on d
decreases the target loss. The target is the behavior to explain, so the target pairs are DPO pairs with the
harmful response CHOSEN and the safe response REJECTED: their loss falls when the model moves
toward the harmful response. A contaminated pair (compliance chosen over refusal) then scores high, and a pair
that teaches the opposite (refusal chosen) scores low. Writing the targets the other way round (safe chosen) would
flip every cosine, and the culprits would rank last; tests/test_gradient_attribution.py checks the sign.

Pairs are tokenised exactly as organism.training.dpo trains (organism.training.dpo_data: the training view, the chat template, eos,
its truncation rules), so the gradients are those of the loss M1 was trained with.
Deterministic on CPU: the LoRA init and the epoch order are seeded, the global RNG is left as it was.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from organism.models.compute_cost import (
    FROZEN_FWD_BWD,
    Cost,
    Stopwatch,
    decoder_layers,
    forward_flops,
    linear_weights,
)
from benchcore.errors import InputError
from organism.data.ranking import Ranking

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from organism.attribution.targets import Targets
    from organism.training.dpo_data import TokenizedPair

METHOD_NAME = "gradient-less"
AGGREGATES = ("mean", "max")
#: LoRA of the warm-up when the profile's recipe has none (the OLMo recipes train every weight).
DEFAULT_LORA: dict[str, Any] = {"r": 16, "alpha": 32.0, "dropout": 0.0, "target_modules": "all-linear"}
#: Learning rate of the warm-up when the profile's recipe is not a LoRA recipe (LESS's LoRA warm-up rate).
DEFAULT_LR = 2e-5
MIN_STEPS_PER_EPOCH = 4
TARGET_ORIENTATION = "chosen=harmful, rejected=safe (positive cosine = a step on the pair lowers the target loss)"


@dataclass(frozen=True)
class LessConfig:
    """Settings of one LESS run; `record()` is what the ranking's parameters keep."""

    warmup_fraction: float = 0.05
    min_warmup_pairs: int = 8
    checkpoints: int = 4
    dim: int = 8192
    lr: float = DEFAULT_LR
    batch_size: int = 8  # pairs per warm-up step and per reference pass (the warm-up's changes the checkpoints)
    gradient_batch: int | None = None  # pairs per per-pair-gradient pass (speed and memory only); None: by device
    beta: float = 5.0
    loss: str = "dpo_norm"
    lora: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_LORA))
    max_length: int = 2048
    add_bos: bool = False
    seed: int = 0
    aggregate: str = "mean"
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0

    def validate(self, source: str = "gradient") -> "LessConfig":
        """Raise InputError naming the bad field; return self so calls chain."""
        from organism.training.dpo import LOSS_TYPES, normalize_lora

        if not 0.0 < self.warmup_fraction <= 1.0:
            raise InputError(source, "warmup_fraction", f"must be in (0, 1], got {self.warmup_fraction!r}")
        for name in ("min_warmup_pairs", "checkpoints", "dim", "batch_size", "gradient_batch", "max_length"):
            value = getattr(self, name)
            if name == "gradient_batch" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(source, name, f"must be a positive integer, got {value!r}")
        for name in ("lr", "beta", "adam_eps", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise InputError(source, name, f"must be positive, got {getattr(self, name)!r}")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InputError(source, name, f"must be in [0, 1), got {getattr(self, name)!r}")
        if self.loss not in LOSS_TYPES:
            raise InputError(source, "loss", f"unknown loss {self.loss!r}; choose one of {', '.join(LOSS_TYPES)}")
        if self.aggregate not in AGGREGATES:
            raise InputError(source, "aggregate", f"must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}")
        normalize_lora(self.lora, f"{source}.lora")
        return self

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        out["lora"] = dict(self.lora)
        return out


@dataclass(frozen=True)
class WarmupCheckpoint:
    """The state LESS needs from one warm-up epoch: LoRA weights and Adam's second moment, by parameter name."""

    epoch: int
    step: int  # optimizer steps taken so far (Adam's bias-correction count)
    lr: float  # mean learning rate over the epoch's steps: the checkpoint's weight in the score
    loss: float  # mean warm-up DPO loss over the epoch (a sign of life, recorded)
    weights: Mapping[str, "torch.Tensor"]
    exp_avg_sq: Mapping[str, "torch.Tensor"]

    def save(self, path: str | os.PathLike) -> Path:
        """One safetensors file (atomic); scalars in its metadata."""
        from safetensors.torch import save_file

        from benchcore.fileio import atomic_file

        tensors = {f"weights/{k}": v.contiguous() for k, v in self.weights.items()}
        tensors.update({f"exp_avg_sq/{k}": v.contiguous() for k, v in self.exp_avg_sq.items()})
        meta = {"epoch": str(self.epoch), "step": str(self.step), "lr": repr(self.lr), "loss": repr(self.loss)}
        with atomic_file(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "WarmupCheckpoint":
        from safetensors import SafetensorError, safe_open

        weights: dict[str, Any] = {}
        v: dict[str, Any] = {}
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                for key in handle.keys():
                    kind, _, name = key.partition("/")
                    (weights if kind == "weights" else v)[name] = handle.get_tensor(key)
            return cls(int(meta["epoch"]), int(meta["step"]), float(meta["lr"]), float(meta["loss"]), weights, v)
        except (OSError, KeyError, ValueError, SafetensorError) as e:
            raise InputError(str(path), None, f"not a warm-up checkpoint: {e}") from e


# ------------------------------------------------------------------------------------------------ data
def target_rows(targets: "Targets") -> list[dict[str, Any]]:
    """Training-view rows of the target pairs: for each prompt with both sides, its harmful responses paired with
    its safe ones in order (the shorter list cycled), harmful CHOSEN and safe REJECTED (see the module doc)."""
    rows: list[dict[str, Any]] = []
    for p in targets.prompts:
        harmful = [r for q, r in targets.harmful if q == p]
        safe = [r for q, r in targets.safe if q == p]
        for i in range(max(len(harmful), len(safe))):
            rows.append({"id": f"target-{len(rows):05d}", "prompt_messages": [{"role": "user", "content": p}],
                         "chosen": harmful[i % len(harmful)], "rejected": safe[i % len(safe)]})
    if not rows:
        raise InputError(targets.source, "prompt", "no target prompt has both a harmful and a safe response")
    return rows


def warmup_indices(n: int, fraction: float, minimum: int, seed: int) -> list[int]:
    """A seeded random max(minimum, ceil(fraction * n)) of range(n) (all of it when n is smaller), sorted."""
    import torch

    k = min(n, max(minimum, math.ceil(fraction * n)))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + 17)).tolist()
    return sorted(perm[:k])


def warmup_batch_size(n_pairs: int, batch_size: int) -> int:
    """The warm-up batch: `batch_size`, made smaller when needed so every epoch takes at least MIN_STEPS_PER_EPOCH
    optimizer steps. Why: at the first step the LoRA B matrices are zero, so the A matrices get a zero gradient and
    a zero exp_avg_sq; a checkpoint taken after that single step would divide their gradients by eps alone."""
    return max(1, min(batch_size, n_pairs // MIN_STEPS_PER_EPOCH))


def default_gradient_batch(device_type: str) -> int:
    """Pairs per per-pair-gradient pass when the user set none: 1 on CPU (measured fastest), 8 elsewhere."""
    return 1 if device_type == "cpu" else 8


def _tokens(pair: "TokenizedPair") -> tuple[int, int]:
    """(tokens through the decoder, tokens through the output head) of scoring both sides of a pair."""
    completion = len(pair.chosen_ids) + len(pair.rejected_ids)
    return 2 * len(pair.prompt_ids) + completion, completion


# ------------------------------------------------------------------------------------------------ pieces
def _collate_on(model: Any, pairs: Sequence["TokenizedPair"], idx: Sequence[int], pad_id: int) -> dict[str, Any]:
    """A collated batch of `pairs[idx]` on the model's device (no accelerator places it here, unlike in training)."""
    from organism.training.dpo_data import collate_pairs

    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in collate_pairs(pairs, idx, pad_id).items()}


def reference_logps(model: Any, pairs: Sequence["TokenizedPair"], loss: str, pad_id: int, *,
                    batch_size: int = 8) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(chosen, rejected) float32 log-probs of every pair under `model` as it is (M0), batched by length."""
    import torch

    from organism.training.dpo import batch_logps, supports_logits_to_keep

    keep = supports_logits_to_keep(model)
    chosen = torch.zeros(len(pairs), dtype=torch.float32)
    rejected = torch.zeros(len(pairs), dtype=torch.float32)
    order = sorted(range(len(pairs)), key=lambda i: (-pairs[i].length, i))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            lp = batch_logps(model, _collate_on(model, pairs, idx, pad_id), loss, keep).float().cpu()
            chosen[idx] = lp[: len(idx)]
            rejected[idx] = lp[len(idx):]
    model.train(was_training)
    return chosen, rejected


def _trainable(model: Any) -> list[tuple[str, "torch.Tensor"]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def warmup(model: Any, pairs: Sequence["TokenizedPair"], ref: tuple["torch.Tensor", "torch.Tensor"],
           config: LessConfig, pad_id: int) -> list[WarmupCheckpoint]:
    """Train the LoRA `model` (a PEFT model on M0) with DPO on `pairs` for config.checkpoints epochs, AdamW and a
    linear decay to 0 over the run, gradients clipped; a WarmupCheckpoint after every epoch.

    `ref` holds the pairs' reference log-probs (M0, computed once for every pair of the mix)."""
    import torch

    from organism.training.dpo import batch_logps, dpo_loss, supports_logits_to_keep
    from organism.training.dpo_data import epoch_order

    named = _trainable(model)
    if not named:
        raise InputError(None, "model", "no trainable parameters: pass a PEFT (LoRA) model")
    params = [p for _, p in named]
    batch_size = warmup_batch_size(len(pairs), config.batch_size)
    opt = torch.optim.AdamW(params, lr=config.lr, betas=(config.adam_beta1, config.adam_beta2),
                            eps=config.adam_eps, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(pairs) / batch_size)
    total = steps_per_epoch * config.checkpoints
    keep = supports_logits_to_keep(model)
    lengths = [p.length for p in pairs]
    out: list[WarmupCheckpoint] = []
    step = 0
    model.train()
    for epoch in range(config.checkpoints):
        order = epoch_order(lengths, seed=config.seed, epoch=epoch, batch_size=batch_size)
        lrs, losses = [], []
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            lr = config.lr * (1.0 - step / total)
            for group in opt.param_groups:
                group["lr"] = lr
            lp = batch_logps(model, _collate_on(model, pairs, idx, pad_id), config.loss, keep)
            sel = torch.tensor(idx)
            loss, _, _ = dpo_loss(lp[: len(idx)], lp[len(idx):], ref[0][sel].to(lp.device),
                                  ref[1][sel].to(lp.device), config.beta)
            opt.zero_grad(set_to_none=False)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            opt.step()
            step += 1
            lrs.append(lr)
            losses.append(float(loss.detach()))
        v = {}
        for name, p in named:
            state = opt.state.get(p, {})
            v[name] = state["exp_avg_sq"].detach().clone() if "exp_avg_sq" in state else torch.zeros_like(p)
        out.append(WarmupCheckpoint(epoch, step, sum(lrs) / len(lrs), sum(losses) / len(losses),
                                    {n: p.detach().clone() for n, p in named}, v))
    opt.zero_grad(set_to_none=True)
    model.eval()
    return out


def load_checkpoint(model: Any, ckpt: WarmupCheckpoint) -> None:
    """Copy a checkpoint's LoRA weights into the model (names must match its trainable parameters)."""
    import torch

    named = dict(_trainable(model))
    if set(named) != set(ckpt.weights):
        raise InputError(None, "checkpoint", "the checkpoint's weights do not match the model's LoRA parameters")
    with torch.no_grad():
        for name, p in named.items():
            p.copy_(ckpt.weights[name])


def precondition(grads: Sequence["torch.Tensor"], names: Sequence[str], ckpt: WarmupCheckpoint,
                 config: LessConfig) -> list["torch.Tensor"]:
    """Adam's view of a gradient: g / (sqrt(v_hat) + eps), v_hat = exp_avg_sq / (1 - beta2^step)."""
    correction = 1.0 - config.adam_beta2 ** max(ckpt.step, 1)
    out = []
    for g, name in zip(grads, names):
        v_hat = ckpt.exp_avg_sq[name].to(g.device, g.dtype) / correction
        out.append(g / (v_hat.sqrt() + config.adam_eps))
    return out


class CountSketch:
    """Seeded signed hashing of every trainable coordinate into `dim` buckets (a sparse JL projection)."""

    def __init__(self, params: Sequence["torch.Tensor"], dim: int, seed: int) -> None:
        import torch

        if dim < 1:
            raise InputError(None, "dim", f"projection dim must be at least 1, got {dim}")
        g = torch.Generator().manual_seed(seed)
        self.dim = dim
        self.buckets = [torch.randint(0, dim, (p.numel(),), generator=g) for p in params]
        self.signs = [torch.randint(0, 2, (p.numel(),), generator=g).double() * 2 - 1 for p in params]

    def __call__(self, grads: Sequence["torch.Tensor"]) -> "torch.Tensor":
        import torch

        out = torch.zeros(self.dim, dtype=torch.float64)
        for grad, b, s in zip(grads, self.buckets, self.signs):
            out.index_add_(0, b, grad.detach().flatten().cpu().double() * s)
        return out


def _unit(v: "torch.Tensor") -> "torch.Tensor":
    return v / v.norm().clamp_min(1e-30)


class LoraTaps:
    """Every pair's own gradient from one backward pass over a padded batch of pairs.

    Why: a pair at a time leaves an accelerator idle (batch 1 is latency-bound), and LESS needs a gradient per
    pair. A Linear's weight gradient is sum_t g_t x_t^T over its rows' tokens, so keeping each LoRA Linear's input x
    and asking autograd for its output's gradient g gives each row's share exactly; a pair's gradient is its chosen
    row's plus its rejected row's. Padding adds nothing: padded positions feed no position the loss reads, so their
    g is zero. Holds only the LoRA Linears' inputs and outputs, not a gradient per parameter per row."""

    def __init__(self, model: Any, names: Sequence[str]) -> None:
        import torch

        self.modules = []
        for name in names:
            owner, _, leaf = name.rpartition(".")
            module = model.get_submodule(owner)
            if leaf != "weight" or not isinstance(module, torch.nn.Linear) or module.bias is not None:
                raise InputError(None, "lora", f"{name}: per-pair gradients need every trainable parameter to be "
                                               "the weight of a Linear without bias (a plain LoRA)")
            self.modules.append(module)
        self.taps: dict[int, tuple["torch.Tensor", "torch.Tensor"]] = {}
        self.handles: list[Any] = []

    def __enter__(self) -> "LoraTaps":
        for k, module in enumerate(self.modules):
            self.handles.append(module.register_forward_hook(lambda _m, inp, out, k=k: self._keep(k, inp[0], out)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
        self.taps.clear()

    def _keep(self, k: int, x: "torch.Tensor", out: "torch.Tensor") -> None:
        if k in self.taps:
            raise RuntimeError("a LoRA Linear ran twice in one forward pass; per-pair gradients would be wrong")
        self.taps[k] = (x.detach(), out)

    def pair_grads(self, loss: "torch.Tensor", n_pairs: int) -> list["torch.Tensor"]:
        """[n_pairs, out, in] per LoRA weight, in `names` order (rows [0, n) chosen, [n, 2n) rejected), float32,
        for a `loss` that is the sum of the pairs' own losses over the forward pass just tapped."""
        import torch

        inputs, outputs = zip(*(self.taps[k] for k in range(len(self.modules))))
        self.taps.clear()
        out = []
        for x, g in zip(inputs, torch.autograd.grad(loss, list(outputs))):
            per_row = torch.einsum("rto,rti->roi", g.float(), x.float())
            out.append(per_row[:n_pairs] + per_row[n_pairs:])
        return out


def pair_gradients(model: Any, pairs: Sequence["TokenizedPair"], ref: tuple["torch.Tensor", "torch.Tensor"],
                   config: LessConfig, pad_id: int, names: Sequence[str],
                   keep_logits: bool = True) -> Iterator[tuple[int, list["torch.Tensor"]]]:
    """(i, gradient of pair i's DPO loss w.r.t. the LoRA weights `names`) for every pair, `config.gradient_batch`
    pairs per pass in length order (less padding). The model must be in eval mode (no dropout: a pair's gradient
    is its own)."""
    import torch

    from organism.training.dpo import batch_logps, dpo_loss

    order = sorted(range(len(pairs)), key=lambda i: (-pairs[i].length, i))
    with LoraTaps(model, names) as taps:
        for start in range(0, len(order), config.gradient_batch):
            idx = order[start: start + config.gradient_batch]
            lp = batch_logps(model, _collate_on(model, pairs, idx, pad_id), config.loss, keep_logits)
            sel = torch.tensor(idx)
            loss, _, _ = dpo_loss(lp[: len(idx)], lp[len(idx):], ref[0][sel].to(lp.device),
                                  ref[1][sel].to(lp.device), config.beta)
            # dpo_loss is a mean: scale to the sum, so each pair's share is its own loss's gradient
            grads = taps.pair_grads(loss * len(idx), len(idx))
            for b, i in enumerate(idx):
                yield i, [g[b] for g in grads]


def checkpoint_scores(model: Any, pairs: Sequence["TokenizedPair"], ref: tuple["torch.Tensor", "torch.Tensor"],
                      targets: Sequence["TokenizedPair"], target_ref: tuple["torch.Tensor", "torch.Tensor"],
                      ckpt: WarmupCheckpoint, sketch: CountSketch, config: LessConfig, pad_id: int, *,
                      progress: Callable[[int], None] | None = None) -> "torch.Tensor":
    """[n] float64: agg over targets of cos(P Gamma(g_pair), P g_target) at one checkpoint."""
    import torch

    from organism.training.dpo import supports_logits_to_keep

    load_checkpoint(model, ckpt)
    model.eval()
    names = [n for n, _ in _trainable(model)]
    keep = supports_logits_to_keep(model)
    t = torch.zeros(len(targets), config.dim, dtype=torch.float64)
    for j, g in pair_gradients(model, targets, target_ref, config, pad_id, names, keep):
        t[j] = _unit(sketch(g))
    out = torch.zeros(len(pairs), dtype=torch.float64)
    for done, (i, g) in enumerate(pair_gradients(model, pairs, ref, config, pad_id, names, keep), 1):
        cos = t @ _unit(sketch(precondition(g, names, ckpt, config)))
        out[i] = cos.mean() if config.aggregate == "mean" else cos.max()
        if progress is not None:
            progress(done)
    return out


# ------------------------------------------------------------------------------------------------ one run
def _lora_model(model: Any, lora: Mapping[str, Any], seed: int) -> Any:
    """Wrap `model` with a seeded LoRA (peft injects its layers into `model`; `unload()` takes them out)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from organism.training.dpo import normalize_lora

    spec = normalize_lora(lora)
    cfg = LoraConfig(r=spec["r"], lora_alpha=spec["alpha"], lora_dropout=spec["dropout"],
                     target_modules=spec["target_modules"], bias="none", task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, cfg)


def less_scores(model: Any, tokenizer: Any, rows: Sequence[Mapping[str, Any]],
                targets: Sequence[Mapping[str, Any]], config: LessConfig, *,
                progress: Callable[[int], None] | None = None,
                checkpoints: Sequence[WarmupCheckpoint] | None = None,
                ) -> tuple[list[float], list[WarmupCheckpoint], dict[str, Any]]:
    """Scores of training-view `rows` {id, prompt_messages, chosen, rejected} against `targets` (rows of the same
    shape, harmful chosen), the warm-up checkpoints, and a record (sizes, cost). `model` is M0: it is wrapped with
    a LoRA for the run and left as it was found. Pass `checkpoints` to skip the warm-up (they must come from a
    LoRA of the same config)."""
    import torch

    from organism.training.dpo_data import pad_token_id, tokenize_pairs

    config.validate()
    if not rows:
        raise InputError(None, "pairs", "no preference pairs to score")
    if not targets:
        raise InputError(None, "targets", "no target pairs")
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(getattr(tokenizer, "name_or_path", None) or "tokenizer", "chat_template",
                         "the gradient method tokenises pairs as DPO trains them and needs a chat template")
    if hasattr(model, "peft_config"):
        raise InputError(None, "model", "pass M0 without an adapter: the method adds its own LoRA")
    if config.gradient_batch is None:
        device = next(model.parameters()).device.type
        config = replace(config, gradient_batch=default_gradient_batch(device))
    cost = Cost()
    clock = Stopwatch()
    with clock, torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        pairs = tokenize_pairs(tokenizer, rows, config.max_length, add_bos=config.add_bos, source="pairs")
        tpairs = tokenize_pairs(tokenizer, targets, config.max_length, add_bos=config.add_bos, source="targets")
        pad_id = pad_token_id(tokenizer)
        body = linear_weights([decoder_layers(model)])
        head = linear_weights([model.get_output_embeddings()]) if model.get_output_embeddings() is not None else 0

        def fwd(ps: Sequence["TokenizedPair"], weights: int = body) -> float:
            tok = [_tokens(p) for p in ps]
            return forward_flops(weights, sum(a for a, _ in tok)) + forward_flops(head, sum(b for _, b in tok))

        ref = reference_logps(model, pairs, config.loss, pad_id, batch_size=config.batch_size)
        target_ref = reference_logps(model, tpairs, config.loss, pad_id, batch_size=config.batch_size)
        cost.add("reference", fwd(pairs) + fwd(tpairs))
        warm_idx = warmup_indices(len(pairs), config.warmup_fraction, config.min_warmup_pairs, config.seed)
        was_training = model.training
        requires_grad = [p.requires_grad for p in model.parameters()]
        peft_model = _lora_model(model, config.lora, config.seed)
        with_lora = linear_weights([decoder_layers(peft_model)])  # the base's linears + LoRA's A and B
        try:
            if checkpoints is None:
                sub = [pairs[i] for i in warm_idx]
                sel = torch.tensor(warm_idx)
                checkpoints = warmup(peft_model, sub, (ref[0][sel], ref[1][sel]), config, pad_id)
                cost.add("warmup", config.checkpoints * FROZEN_FWD_BWD * fwd(sub, with_lora))
            if not checkpoints:
                raise InputError(None, "checkpoints", "no warm-up checkpoints")
            sketch = CountSketch([p for _, p in _trainable(peft_model)], config.dim, config.seed)
            weights = torch.tensor([c.lr for c in checkpoints], dtype=torch.float64)
            total = torch.zeros(len(pairs), dtype=torch.float64)
            for k, ckpt in enumerate(checkpoints):
                done = k * len(pairs)
                step = None if progress is None else (lambda n, done=done: progress(done + n))
                total += weights[k] * checkpoint_scores(peft_model, pairs, ref, tpairs, target_ref, ckpt, sketch,
                                                        config, pad_id, progress=step)
                cost.add("gradients", FROZEN_FWD_BWD * (fwd(pairs, with_lora) + fwd(tpairs, with_lora)))
            scores = (total / weights.sum()).tolist()
        finally:
            peft_model.unload()  # M0 as it was: no LoRA layers left in it, the same flags and mode
            for p, flag in zip(model.parameters(), requires_grad):
                p.requires_grad_(flag)
            model.train(was_training)
    cost.wall_s = clock.elapsed
    record = {"gradient_batch": config.gradient_batch, "n_warmup_pairs": len(warm_idx),
              "warmup_batch": warmup_batch_size(len(warm_idx), config.batch_size),
              "n_target_pairs": len(tpairs),
              "lora_weights": sum(v.numel() for v in checkpoints[0].weights.values()),
              "checkpoint_lr": [c.lr for c in checkpoints], "checkpoint_step": [c.step for c in checkpoints],
              "warmup_loss": [round(c.loss, 6) for c in checkpoints], "cost": cost.to_dict()}
    from organism.attribution.targets import UNDEFINED_SCORE

    return [s if math.isfinite(s) else UNDEFINED_SCORE for s in scores], list(checkpoints), record


def less_ranking(model: Any, tokenizer: Any, rows: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]],
                 config: LessConfig, parameters: Mapping[str, Any] | None = None, *,
                 progress: Callable[[int], None] | None = None, checkpoint_dir: str | os.PathLike | None = None,
                 ) -> Ranking:
    """The LESS Ranking of `rows` (descending, ties by id), parameters = the caller's + config + record.

    checkpoint_dir: also write the warm-up checkpoints there (ckpt-EPOCH.safetensors) for inspection or reuse."""
    scores, ckpts, record = less_scores(model, tokenizer, rows, targets, config, progress=progress)
    if checkpoint_dir is not None:
        for c in ckpts:
            c.save(Path(checkpoint_dir) / f"ckpt-{c.epoch:02d}.safetensors")
    params = {**dict(parameters or {}), **config.record(), "projection": "count-sketch",
              "preconditioning": "adam exp_avg_sq (training side); plain gradients (target side)",
              "target_orientation": TARGET_ORIENTATION, "tokenization": "organism.training.dpo training view", **record}
    return Ranking.from_scores(METHOD_NAME, params, zip((str(r["id"]) for r in rows), scores))
