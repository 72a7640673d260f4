"""Gradient baseline (LESS-style, method.md §6), a reduced version: score = cosine between a pair's DPO-loss
gradient and the mean gradient of target pairs, averaged over checkpoints.

What is here: per-pair gradient of the length-normalized DPO loss (policy = the LoRA model, reference = the same
model with its adapter disabled) w.r.t. the trainable (LoRA) parameters, one pair at a time; a count-sketch
projection to `dim` coordinates (each parameter coordinate goes to one seeded random bucket with a random sign:
inner products are preserved in expectation, O(parameters) per pair instead of a dense 8192-column matrix);
unit-normalised; score = mean over checkpoints of cos(g_pair, mean target gradient). Target pairs are the harmful
response as chosen and the safe response as rejected.
What is NOT here (yet): the short LoRA DPO warm-up that produces the checkpoints (train them with organism.dpo
and pass the models), and the Adam second-moment preconditioning of the train-pair gradients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from organism.errors import InputError
from organism.ranking import Ranking

if TYPE_CHECKING:  # pragma: no cover
    import torch


def _mean_logp(model: Any, tokenizer: Any, prompt: str, response: str, chat_template: bool) -> "torch.Tensor":
    """Mean log-prob of the response tokens (the dpo_norm quantity)."""
    import torch

    from organism.activations import encode_pair

    e = encode_pair(tokenizer, prompt, response, chat_template=chat_template)
    if e.n_response < 1 or e.start < 1:
        raise InputError(None, "response", "a pair needs at least one prompt and one response token")
    ids = torch.tensor([e.ids], device=next(model.parameters()).device)
    logits = model(input_ids=ids).logits[0, e.start - 1: len(e.ids) - 1].float()
    logp = torch.log_softmax(logits, -1).gather(1, ids[0, e.start:].unsqueeze(1)).squeeze(1)
    return logp.mean()


class CountSketch:
    """Seeded signed hashing of every trainable coordinate into `dim` buckets."""

    def __init__(self, params: Sequence["torch.Tensor"], dim: int, seed: int) -> None:
        import torch

        if dim < 1:
            raise InputError(None, "dim", f"projection dim must be at least 1, got {dim}")
        g = torch.Generator().manual_seed(seed)
        self.dim = dim
        self.buckets = [torch.randint(0, dim, (p.numel(),), generator=g) for p in params]
        self.signs = [torch.randint(0, 2, (p.numel(),), generator=g).float() * 2 - 1 for p in params]

    def __call__(self, grads: Sequence["torch.Tensor"]) -> "torch.Tensor":
        import torch

        out = torch.zeros(self.dim, dtype=torch.float64)
        for grad, b, s in zip(grads, self.buckets, self.signs):
            out.index_add_(0, b, (grad.detach().flatten().cpu().float() * s).double())
        return out


def pair_gradients(model: Any, tokenizer: Any, triples: Sequence[tuple[str, str, str]], *, beta: float = 5.0,
                   dim: int = 8192, seed: int = 0, chat_template: bool = True) -> "torch.Tensor":
    """[n, dim] unit-normalised sketched gradients of the DPO loss for (prompt, chosen, rejected) triples.

    `model` must be a PEFT model (its adapter is disabled for the reference pass)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InputError(None, "model", "no trainable parameters: pass a PEFT (LoRA) model")
    if not hasattr(model, "disable_adapter"):
        raise InputError(None, "model", "the reference pass needs a PEFT model (disable_adapter)")
    sketch = CountSketch(params, dim, seed)
    rows = []
    for prompt, chosen, rejected in triples:
        with torch.no_grad(), model.disable_adapter():
            ref = _mean_logp(model, tokenizer, prompt, chosen, chat_template) - _mean_logp(
                model, tokenizer, prompt, rejected, chat_template)
        pol = _mean_logp(model, tokenizer, prompt, chosen, chat_template) - _mean_logp(
            model, tokenizer, prompt, rejected, chat_template)
        loss = -torch.nn.functional.logsigmoid(beta * (pol - ref))
        grads = torch.autograd.grad(loss, params)
        v = sketch(grads)
        rows.append(v / v.norm().clamp_min(1e-30))
    return torch.stack(rows)


def gradient_ranking(checkpoints: Sequence[Any], tokenizer: Any, rows: Sequence[Mapping[str, str]],
                     target_triples: Sequence[tuple[str, str, str]], parameters: Mapping[str, Any] | None = None,
                     *, beta: float = 5.0, dim: int = 8192, seed: int = 0, chat_template: bool = True) -> Ranking:
    """Rank teacher-forcing rows {id, prompt, chosen, rejected} by mean-over-checkpoints cosine with the mean
    target gradient (ties by id)."""
    import torch

    if not checkpoints:
        raise InputError(None, "checkpoints", "give at least one checkpoint")
    if not target_triples:
        raise InputError(None, "targets", "no target pairs")
    triples = [(r["prompt"], r["chosen"], r["rejected"]) for r in rows]
    total = torch.zeros(len(rows), dtype=torch.float64)
    for ckpt in checkpoints:
        g = pair_gradients(ckpt, tokenizer, triples, beta=beta, dim=dim, seed=seed, chat_template=chat_template)
        t = pair_gradients(ckpt, tokenizer, target_triples, beta=beta, dim=dim, seed=seed,
                           chat_template=chat_template).mean(0)
        total += g @ (t / t.norm().clamp_min(1e-30))
    scores = (total / len(checkpoints)).tolist()
    params = {**dict(parameters or {}), "beta": beta, "dim": dim, "seed": seed, "projection": "count-sketch",
              "checkpoints": len(checkpoints), "chat_template": chat_template, "preconditioning": "none"}
    return Ranking.from_scores("gradient-less", params, zip((str(r["id"]) for r in rows), scores))
