"""Knowledge by option log-likelihood: no generation, no judge, so it is cheap and exactly reproducible.

Each option is scored as a continuation of "Question: ...\nAnswer:" by its mean per-token log-probability
(length-normalised, as lm-eval's acc_norm idea: long options are not penalised for being long).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def score_mcq(model: Any, tokenizer: Any, records: Sequence[Any], *, batch_size: int = 16,
              on_batch: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    import torch

    pairs: list[tuple[int, int, list[int], int]] = []  # (record index, option index, token ids, n option tokens)
    for ri, rec in enumerate(records):
        context = tokenizer(f"Question: {rec.question}\nAnswer:", add_special_tokens=False)["input_ids"]
        for oi, option in enumerate(rec.choices):
            cont = tokenizer(" " + option, add_special_tokens=False)["input_ids"]
            pairs.append((ri, oi, context + cont, len(cont)))
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][2]))
    scores: dict[tuple[int, int], float] = {}
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = [pairs[i] for i in order[start:start + batch_size]]
            width = max(len(p[2]) for p in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (_, _, toks, _) in enumerate(batch):
                ids[row, : len(toks)] = torch.tensor(toks)
                mask[row, : len(toks)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            target = ids[:, 1:].to(device)
            token_lp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            for row, (ri, oi, toks, n_opt) in enumerate(batch):
                end = len(toks) - 1
                scores[(ri, oi)] = float(token_lp[row, end - n_opt:end].mean())
            if on_batch:
                on_batch(min(start + batch_size, len(order)), len(order))
    out = []
    for ri, rec in enumerate(records):
        option_scores = [scores[(ri, oi)] for oi in range(len(rec.choices))]
        pred = max(range(len(option_scores)), key=option_scores.__getitem__)
        out.append({"record_id": rec.id, "prediction": pred, "answer": rec.answer,
                    "correct": int(pred == rec.answer), "option_logprobs": option_scores})
    return out
