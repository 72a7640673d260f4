"""Knowledge by option log-likelihood: no generation, no judge, so it is cheap and exactly reproducible.

Each option is scored as a continuation of "Question: ...\nAnswer:" by its mean per-token log-probability
(length-normalised, as lm-eval's acc_norm idea: long options are not penalised for being long).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


# token_logprobs(sequences) -> for each sequence of n token ids, the n - 1 log-probabilities of tokens 1..n-1,
# each given the tokens before it. The HF model and the vLLM engine each provide one.
TokenLogprobs = Callable[[Sequence[Sequence[int]]], list[list[float]]]


def score_mcq(model: Any, tokenizer: Any, records: Sequence[Any], *, batch_size: int = 16,
              on_batch: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Score with an HF causal LM in memory."""
    return score_mcq_by(hf_token_logprobs(model, tokenizer), tokenizer, records, batch_size=batch_size,
                        on_batch=on_batch)


def score_mcq_by(token_logprobs: TokenLogprobs, tokenizer: Any, records: Sequence[Any], *, batch_size: int = 16,
                 on_batch: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    pairs: list[tuple[int, int, list[int], int]] = []  # (record index, option index, token ids, n option tokens)
    for ri, rec in enumerate(records):
        context = tokenizer(f"Question: {rec.question}\nAnswer:", add_special_tokens=False)["input_ids"]
        for oi, option in enumerate(rec.choices):
            cont = tokenizer(" " + option, add_special_tokens=False)["input_ids"]
            pairs.append((ri, oi, context + cont, len(cont)))
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][2]))  # similar lengths share a batch
    scores: dict[tuple[int, int], float] = {}
    for start in range(0, len(order), batch_size):
        batch = [pairs[i] for i in order[start:start + batch_size]]
        for (ri, oi, toks, n_opt), lps in zip(batch, token_logprobs([p[2] for p in batch]), strict=True):
            option_lps = lps[len(toks) - 1 - n_opt:]
            scores[(ri, oi)] = sum(option_lps) / len(option_lps)
        if on_batch:
            on_batch(min(start + batch_size, len(order)), len(order))
    out = []
    for ri, rec in enumerate(records):
        option_scores = [scores[(ri, oi)] for oi in range(len(rec.choices))]
        pred = max(range(len(option_scores)), key=option_scores.__getitem__)
        out.append({"record_id": rec.id, "prediction": pred, "answer": rec.answer,
                    "correct": int(pred == rec.answer), "option_logprobs": option_scores})
    return out


def hf_token_logprobs(model: Any, tokenizer: Any) -> TokenLogprobs:
    """One right-padded forward pass per batch."""
    import torch

    from organism.models.logprobs import next_token_logprobs, right_padded

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def token_logprobs(sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        ids, mask = right_padded(sequences, pad)
        with torch.inference_mode():
            ids = ids.to(device)
            token_lp = next_token_logprobs(model(input_ids=ids, attention_mask=mask.to(device)).logits, ids).cpu()
        return [token_lp[row, : len(toks) - 1].tolist() for row, toks in enumerate(sequences)]

    return token_logprobs
