"""Teacher-forced next-token log-probabilities: the one gather that DPO, knowledge scoring and the token-shift
analysis all rest on, so they cannot drift apart in how they shift or normalise."""

from __future__ import annotations

from typing import Any


def next_token_logprobs(logits: Any, ids: Any) -> Any:
    """log p(ids[:, t + 1] | ids[:, :t + 1]) for every t: shape (batch, length - 1).

    Computed in float32: a bf16 log-softmax over a 50k-100k vocabulary loses the small differences DPO trains on.
    Positions whose id is a placeholder (padding, ignored labels) come out as ordinary numbers; callers mask them.
    """
    import torch

    logits = logits[:, :-1, :].float()
    picked = torch.gather(logits, 2, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def right_padded(sequences: Any, pad: int) -> tuple[Any, Any]:
    """(ids, attention mask) for token-id lists padded on the right, the layout every teacher-forced pass here
    uses (a causal model's real tokens never see the padding after them)."""
    import torch

    width = max(len(t) for t in sequences)
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, toks in enumerate(sequences):
        ids[row, : len(toks)] = torch.tensor(list(toks))
        mask[row, : len(toks)] = 1
    return ids, mask
