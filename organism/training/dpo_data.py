"""Preference pairs as token ids: the exact sequences DPO scores, and their batches.

Why a module of its own: the reference log-prob cache is keyed by a hash of these token ids, so the rules
that produce them (template, eos, truncation, masking) must live in one place and be tested on their own.

Rules (they match open-instruct's DPO recipe, which trains only the last assistant turn):
- The prompt is `prompt_messages` (the conversation up to, excluding, the last assistant turn) rendered with the
  tokenizer's chat template and `add_generation_prompt=True`, then tokenized WITHOUT adding special tokens: the
  template decides about BOS (OLMo 2's and Llama's templates write it; ChatML templates do not), so a BOS appears
  exactly once whatever the tokenizer's `add_bos_token` says.
- A completion is its text tokenized without special tokens, followed by the eos token id. Prompt and completion
  are tokenized separately so the boundary is exact (no BPE merge across it) and identical for chosen and rejected.
- Labels are -100 on the prompt; only completion tokens (and the eos) count.
- `add_bos` (the OLMo 2 recipe's "BOS added") prepends the tokenizer's BOS only when the rendered prompt does not
  already start with it, and keeps it when the prompt is truncated.
- Truncation to `max_length` tokens (prompt + completion):
  1. the prompt loses tokens from the LEFT (old turns and the system prompt go first, the question stays), by the
     amount the LONGER completion needs, so chosen and rejected are always scored after the same context; the prompt
     keeps at least min(its length, max_length // 2) tokens so a very long completion still has context;
  2. then each completion loses tokens from the RIGHT (its eos goes first) to fit what is left.
  Every completion keeps at least one token, so every sequence has a label.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchcore.errors import InputError

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TokenizedPair:
    """One preference pair as the trainer sees it; `prompt_dropped` counts left-truncated prompt tokens."""

    id: str
    prompt_ids: tuple[int, ...]
    chosen_ids: tuple[int, ...]
    rejected_ids: tuple[int, ...]
    prompt_dropped: int = 0
    chosen_dropped: int = 0
    rejected_dropped: int = 0

    def sequence(self, side: str) -> tuple[list[int], list[int]]:
        """(input_ids, labels) for side "chosen" or "rejected"."""
        completion = self.chosen_ids if side == "chosen" else self.rejected_ids
        ids = [*self.prompt_ids, *completion]
        labels = [IGNORE_INDEX] * len(self.prompt_ids) + list(completion)
        return ids, labels

    @property
    def length(self) -> int:
        """Length of the longer of the two sequences (what a batch pads to)."""
        return len(self.prompt_ids) + max(len(self.chosen_ids), len(self.rejected_ids))


def _validate_messages(messages: Any, source: str, pair_id: str) -> list[dict[str, str]]:
    field = f"{pair_id}.prompt_messages"
    if not isinstance(messages, list) or not messages:
        raise InputError(source, field, "must be a non-empty list of {role, content} messages")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InputError(source, f"{field}[{i}]", "must be a {role, content} mapping")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise InputError(source, f"{field}[{i}]", "role and content must be strings")
        out.append({"role": role, "content": content})
    return out


def _check_row(row: Any, source: str) -> tuple[str, list[dict[str, str]], str, str]:
    if not isinstance(row, Mapping):
        raise InputError(source, None, f"a pair must be a mapping, got {type(row).__name__}")
    pair_id = row.get("id")
    if pair_id is None or pair_id == "":
        raise InputError(source, "id", "every pair needs a stable id")
    pair_id = str(pair_id)
    messages = _validate_messages(row.get("prompt_messages"), source, pair_id)
    for side in ("chosen", "rejected"):
        if not isinstance(row.get(side), str):
            raise InputError(source, f"{pair_id}.{side}", "must be the last assistant turn's text (a string)")
    return pair_id, messages, row["chosen"], row["rejected"]


def render_prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of the chat-templated prompt, ending with the assistant generation prompt."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _eos_id(tokenizer: Any) -> int:
    if tokenizer.eos_token_id is None:
        raise InputError(getattr(tokenizer, "name_or_path", "tokenizer"), "eos_token", "the tokenizer has no eos token")
    return int(tokenizer.eos_token_id)


def completion_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of an assistant turn: its text, then eos (the turn end the model must learn to produce)."""
    return [*tokenizer(text, add_special_tokens=False)["input_ids"], _eos_id(tokenizer)]


def truncate_pair(
    prompt: Sequence[int], chosen: Sequence[int], rejected: Sequence[int], max_length: int, *, keep_first: bool = False
) -> tuple[list[int], list[int], list[int]]:
    """Apply the module's truncation rules (prompt from the left first, then completions from the right).

    `keep_first` keeps the prompt's first token (a BOS) when the prompt is cut from the left.
    """
    if max_length < 2:
        raise InputError(None, "max_length", f"must be at least 2, got {max_length}")
    if keep_first and len(prompt) > 1:
        head, body = list(prompt[:1]), list(prompt[1:])
        new_body, new_chosen, new_rejected = truncate_pair(body, chosen, rejected, max_length - 1)
        return head + new_body, new_chosen, new_rejected
    longest = max(len(chosen), len(rejected))
    keep_prompt = len(prompt)
    if keep_prompt + longest > max_length:
        floor = min(len(prompt), max_length // 2)
        keep_prompt = max(max_length - longest, floor)
    new_prompt = list(prompt[len(prompt) - keep_prompt :]) if keep_prompt else []
    room = max_length - keep_prompt
    return new_prompt, list(chosen[:room]), list(rejected[:room])


def _build_pair(
    pair_id: str, prompt: list[int], chosen: list[int], rejected: list[int], max_length: int, bos: int | None
) -> TokenizedPair:
    if bos is not None and (not prompt or prompt[0] != bos):
        prompt = [bos, *prompt]
    new_prompt, new_chosen, new_rejected = truncate_pair(prompt, chosen, rejected, max_length,
                                                         keep_first=bos is not None)
    return TokenizedPair(
        id=pair_id,
        prompt_ids=tuple(new_prompt),
        chosen_ids=tuple(new_chosen),
        rejected_ids=tuple(new_rejected),
        prompt_dropped=len(prompt) - len(new_prompt),
        chosen_dropped=len(chosen) - len(new_chosen),
        rejected_dropped=len(rejected) - len(new_rejected),
    )


def tokenize_pair(
    tokenizer: Any, row: Mapping[str, Any], max_length: int, *, add_bos: bool = False, source: str = "pairs"
) -> TokenizedPair:
    """Tokenize one training-view row {id, prompt_messages, chosen, rejected} (see `organism.data.preference`)."""
    return tokenize_pairs(tokenizer, [row], max_length, add_bos=add_bos, source=source)[0]


def tokenize_pairs(
    tokenizer: Any,
    rows: Iterable[Mapping[str, Any]],
    max_length: int,
    *,
    add_bos: bool = False,
    source: str = "pairs",
    chunk_size: int = 1024,
) -> list[TokenizedPair]:
    """Tokenize every row, in order; duplicate ids are an input error (pairs are keyed by id).

    Texts go to the tokenizer in chunks (one call per chunk and side), which is what makes the 378k-pair OLMo mix
    a matter of minutes. `add_bos` prepends the tokenizer's BOS when the template did not write it, and keeps it
    through left truncation (the OLMo 2 recipe's "BOS added").
    """
    eos = _eos_id(tokenizer)
    bos = tokenizer.bos_token_id if add_bos else None
    out: list[TokenizedPair] = []
    seen: set[str] = set()
    chunk: list[tuple[str, list[dict[str, str]], str, str]] = []

    def flush() -> None:
        def encode(texts: list[str]) -> list[list[int]]:
            return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

        prompts = encode([tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
                          for _, m, _, _ in chunk])
        chosen = encode([c for _, _, c, _ in chunk])
        rejected = encode([r for _, _, _, r in chunk])
        for (pair_id, _, _, _), p, c, r in zip(chunk, prompts, chosen, rejected):
            out.append(_build_pair(pair_id, p, [*c, eos], [*r, eos], max_length, bos))
        chunk.clear()

    for row in rows:
        checked = _check_row(row, source)
        if checked[0] in seen:
            raise InputError(source, "id", f"duplicate pair id {checked[0]!r}")
        seen.add(checked[0])
        chunk.append(checked)
        if len(chunk) >= chunk_size:
            flush()
    if chunk:
        flush()
    return out


def token_data_hash(pairs: Sequence[TokenizedPair]) -> str:
    """sha256 of the token ids (order included): what the reference log-probs depend on, and nothing else."""
    import numpy as np

    digest = hashlib.sha256()
    for pair in pairs:
        for part in (pair.prompt_ids, pair.chosen_ids, pair.rejected_ids):
            digest.update(len(part).to_bytes(4, "little"))
            digest.update(np.asarray(part, dtype="<i4").tobytes())
    return digest.hexdigest()


def pad_token_id(tokenizer: Any) -> int:
    """The id used for padding; padded positions are masked, so eos is a safe fallback."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad)


def collate_pairs(pairs: Sequence[TokenizedPair], indices: Sequence[int], pad_id: int) -> dict[str, Any]:
    """One right-padded batch: rows [0, B) are the chosen sequences, rows [B, 2B) the rejected ones.

    One forward pass scores both sides (half the kernel launches and one set of gathered weights under ZeRO-3).
    `pair_index` maps each row pair back to its position in `pairs` (for the cached reference log-probs);
    `n_tokens` counts the non-padding tokens (for throughput).
    """
    import torch

    seqs = [pairs[i].sequence("chosen") for i in indices] + [pairs[i].sequence("rejected") for i in indices]
    width = max(len(ids) for ids, _ in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(seqs):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        labels[row, : len(labs)] = torch.tensor(labs, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "pair_index": torch.tensor(list(indices), dtype=torch.long),
        "n_tokens": attention_mask.sum().reshape(1),
    }


def collate_shared_prompt(pairs: Sequence[TokenizedPair], indices: Sequence[int], pad_id: int) -> dict[str, Any]:
    """One right-padded row per pair, `prompt + chosen + rejected`, so the shared prompt is computed once.

    The rejected tokens must not see the chosen ones: `segments` marks each token (0 prompt, 1 chosen, 2 rejected,
    -1 padding) and `shared_prompt_mask` turns it into the attention mask. Rejected positions restart where the
    prompt ends, so every token sits at the position, and attends to the keys, it has in its own sequence: the
    numbers equal the two-row layout's up to floating-point reassociation.

    `predict_at` indexes the flattened (row, position) grid at the position whose logits predict each label; the
    first token of both completions is predicted from the prompt's last position. `label_ids` are those labels
    and `label_seq` the sequence each belongs to (chosen of pair b -> b, rejected -> B + b), chosen labels first.
    """
    import torch

    rows = [pairs[i] for i in indices]
    width = max(len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in rows)
    b = len(rows)
    input_ids = torch.full((b, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((b, width), dtype=torch.long)
    segments = torch.full((b, width), -1, dtype=torch.long)
    predict: list[list[int]] = [[], []]
    labels: list[list[int]] = [[], []]
    seq: list[list[int]] = [[], []]
    for row, pair in enumerate(rows):
        n_p, n_c, n_r = len(pair.prompt_ids), len(pair.chosen_ids), len(pair.rejected_ids)
        ids = [*pair.prompt_ids, *pair.chosen_ids, *pair.rejected_ids]
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        position_ids[row, : n_p + n_c] = torch.arange(n_p + n_c)
        position_ids[row, n_p + n_c : len(ids)] = torch.arange(n_p, n_p + n_r)
        segments[row, :n_p] = 0
        segments[row, n_p : n_p + n_c] = 1
        segments[row, n_p + n_c : len(ids)] = 2
        base = row * width
        last_prompt = base + n_p - 1
        predict[0] += [last_prompt, *range(base + n_p, base + n_p + n_c - 1)]
        predict[1] += [last_prompt, *range(base + n_p + n_c, base + n_p + n_c + n_r - 1)]
        labels[0] += pair.chosen_ids
        labels[1] += pair.rejected_ids
        seq[0] += [row] * n_c
        seq[1] += [b + row] * n_r
    n_tokens = int((segments >= 0).sum())
    return {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "segments": segments,
        "predict_at": torch.tensor(predict[0] + predict[1], dtype=torch.long),
        "label_ids": torch.tensor(labels[0] + labels[1], dtype=torch.long),
        "label_seq": torch.tensor(seq[0] + seq[1], dtype=torch.long),
        "pair_index": torch.tensor(list(indices), dtype=torch.long),
        "n_tokens": torch.tensor([n_tokens]),
    }


def shared_prompt_mask(segments: Any) -> Any:
    """Boolean [B, 1, L, L] mask, True where a query may attend to a key: causal, within its row, the prompt and
    its own completion only. A padding query sees itself alone (a row of no keys would make NaNs)."""
    import torch

    q, k = segments.unsqueeze(-1), segments.unsqueeze(-2)
    length = segments.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool, device=segments.device).tril()
    visible = (k >= 0) & ((k == 0) | (k == q)) & causal
    eye = torch.eye(length, dtype=torch.bool, device=segments.device)
    visible = torch.where((q < 0), eye, visible)
    return visible.unsqueeze(1)


def epoch_order(
    lengths: Sequence[int], *, seed: int, epoch: int, batch_size: int, length_bucketing: bool = False
) -> list[int]:
    """The order pairs are visited in one epoch: a permutation from a seeded torch.Generator.

    Seeded per (seed, epoch) so a resumed run recomputes exactly the order it was interrupted in. With
    `length_bucketing`, pairs of similar length share a batch (sorted inside windows of 64 batches, then the
    batches are shuffled), which cuts padding on CPU; batch composition then differs from a plain shuffle.
    """
    import torch

    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if not length_bucketing or batch_size <= 1:
        return order
    window = 64 * batch_size
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: (-lengths[i], i))
        batches.extend(chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size))
    # A short batch may only come last: accelerate shards whole batches across processes.
    full = [b for b in batches if len(b) == batch_size]
    short = [b for b in batches if len(b) != batch_size]
    shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
    return [i for batch in [*shuffled, *short] for i in batch]


class EpochDataset:
    """Map-style dataset over pair positions whose order is `epoch_order` for the current epoch.

    The DataLoader iterates it sequentially; changing the epoch changes the order without rebuilding (and
    re-preparing) the accelerate DataLoader, and `skip_first_batches` sees the same order on resume. The method is
    deliberately not called `set_epoch`: accelerate calls a dataset's `set_epoch` with its own per-loader iteration
    count, which restarts at 0 for the fresh loader a resume builds.
    """

    def __init__(self, lengths: Sequence[int], *, seed: int, batch_size: int, length_bucketing: bool = False):
        self._lengths = list(lengths)
        self._seed = seed
        self._batch_size = batch_size
        self._bucketing = length_bucketing
        self._order = list(range(len(self._lengths)))
        self.select_epoch(0)

    def select_epoch(self, epoch: int) -> None:
        self._order = epoch_order(
            self._lengths, seed=self._seed, epoch=epoch, batch_size=self._batch_size, length_bucketing=self._bucketing
        )

    def __len__(self) -> int:
        return len(self._order)

    def __getitem__(self, position: int) -> int:
        return self._order[position]
