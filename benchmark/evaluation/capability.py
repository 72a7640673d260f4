"""Capability figures: knowledge by option log-likelihood, and instruction following from ifeval-lite's scored rows.

Knowledge: each option is scored as a continuation of "Question: ...\nAnswer:" by its mean per-token
log-probability (length-normalised, as lm-eval's acc_norm idea: long options are not penalised for being long). No
generation, no judge, so it is cheap and exactly reproducible.

Instruction following (`instruction_following_metrics`): strict prompt- and instruction-level accuracy, the same
accuracy on the tasks whose constraints are all train-family and on those with at least one held-out-family
constraint, and the share of these benign, formatted tasks the model refuses. Every ifeval-lite text carries
several constraint draws in dev/test (prompts.suites), and tasks drawn from one text are correlated, so every
interval here resamples texts (`scenario_id`), not tasks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from benchmark.evaluation import stats

# The instruction-following figures, in the order results.json lists them (the first two are ifeval-lite@1's).
IF_METRICS: dict[str, str] = {
    "if_prompt_strict": "prompt-level strict accuracy: every constraint of a task holds",
    "if_instruction_strict": "instruction-level strict accuracy: each constraint counted on its own",
    "if_train_families": "prompt-level strict accuracy on tasks whose constraints are all from train-visible families",
    "if_heldout_families": "prompt-level strict accuracy on tasks with at least one held-out-family constraint",
    "if_over_refusal": "share of these benign, formatted tasks the refusal detector calls a refusal",
}


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


# ----------------------------------------------------------------------------------------- instruction following
def _cluster(row: Mapping[str, Any]) -> str:
    """The text a task was drawn from (rows written before draws existed have one task per text anyway)."""
    return str(row.get("scenario_id") or row["record_id"])


def _refused(row: Mapping[str, Any]) -> float | None:
    """1.0 / 0.0 by the refusal detector (the field if a grader set it); None for a row without a response."""
    if row.get("refused") is not None:
        return float(row["refused"])
    response = row.get("response")
    if not isinstance(response, str):
        return None
    from benchmark.judges.refusal import is_refusal

    return float(is_refusal(response))


def instruction_following_metrics(rows: Iterable[Mapping[str, Any]], *, n_boot: int = 2000,
                                  seed: int = 0) -> dict[str, stats.Estimate]:
    """The IF_METRICS figures from scored ifeval-lite rows (each with `instructions_followed`, one 0/1 per
    constraint, and `constraint_ids`), each a `stats.rate` over labels grouped by text.

    The family groups partition the tasks (`prompts.constraints.family_group`), so their sample counts add up to
    `if_prompt_strict`'s. A group with no task, or `if_over_refusal` when no row has a response, is left out.
    """
    from prompts.constraints import family_group

    prompt_level: dict[str, list[float]] = defaultdict(list)
    instruction_level: dict[str, list[float]] = defaultdict(list)
    by_group: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    refused: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        followed = [float(x) for x in r["instructions_followed"]]
        key = _cluster(r)
        prompt_level[key].append(float(all(followed)))
        instruction_level[key].extend(followed)
        by_group[family_group(r.get("constraint_ids") or ())][key].append(float(all(followed)))
        label = _refused(r)
        if label is not None:
            refused[key].append(label)
    out: dict[str, stats.Estimate] = {}
    if not prompt_level:
        return out

    def est(labels: Mapping[str, list[float]], higher_is_better: bool = True) -> stats.Estimate:
        return stats.rate(dict(sorted(labels.items())), n_boot=n_boot, seed=seed, higher_is_better=higher_is_better)

    out["if_prompt_strict"] = est(prompt_level)
    out["if_instruction_strict"] = est(instruction_level)
    for group in ("train_families", "heldout_families"):
        if by_group.get(group):
            out[f"if_{group}"] = est(by_group[group])
    if refused:
        out["if_over_refusal"] = est(refused, higher_is_better=False)
    return out
