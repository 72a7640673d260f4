"""Mean response activations: the one forward-pass primitive that attribution is built on.

a(p, r; M, l) = mean over the RESPONSE tokens of HF `hidden_states[l]` when (p, r) is teacher-forced through M.
The authors ran it at batch 1, full depth, with `output_hidden_states=True`, two passes per pair;
here the same numbers come out of a much cheaper computation:

- length-bucketed batches: pairs sorted by token length and packed up to a padded-token budget, RIGHT padding
  with an attention mask (positions 0..n-1 stay the same as in an unpadded pass, so rotary positions match);
- the forward stops at the deepest layer asked for: forward hooks on the decoder layers capture
  `hidden_states[l]` (= output of decoder layer l-1; index 0 = the input to layer 0) and the hook on the
  deepest one raises, so later layers, the final norm and the lm_head never run. The model's own embedding,
  mask and rotary code are used unchanged, so this works for any HF decoder that keeps its layers in
  `model.model.layers` (Llama, OLMo 2, Qwen, Mistral...). `hidden_states[num_layers]` in HF is AFTER the final
  norm, so for that index the norm is applied to match;
- bf16 (or whatever dtype the model is in) compute, float32 accumulation of the means, `torch.inference_mode`;
- resumable shards: results stream to `shard_dir` as safetensors files keyed by pair id plus one JSON index per
  rank; a restarted run skips ids already written;
- data parallel: with WORLD_SIZE > 1 (torchrun / `accelerate launch`), rank r takes every world_size-th bucket
  and writes its own shards; after a barrier every rank reads the merged result. For example:
  `torchrun --nproc-per-node 8 -m benchmark.cli.main attribute ... --device cuda --shard-dir DIR` or
  `accelerate launch --num_processes 8 -m benchmark.cli.main attribute ... --device cuda --shard-dir DIR`;
- the prompt shared between responses: rows whose prompt tokens are identical (a pair's chosen and rejected
  side; several target responses to one prompt) run as ONE sequence, the prompt followed by each response, with
  a 4D attention mask that lets every response see the prompt and its own earlier tokens only, and position ids
  that restart after the prompt for each response. Same numbers, the prompt's tokens run once. The packed
  sequence pays in attention what it saves in the linear maps, so a group is packed only where a FLOP estimate
  says it is cheaper (pack_units). With SmolLM2-135M's narrow layers (w = 3.3e-4) that is where the prompt is a
  large share of short sequences. bench/attribution_throughput.py, against the naive loop: 2.13x shared vs 2.01x
  unshared with ~110-token prompts; 2.08x vs 2.06x with ~25-token ones, where packing every pair had been 8%
  slower; 3.71x vs 3.09x on the smol mix (short answers, prompts 39% of the tokens, every pair packed). On
  OLMo 2 7B, whose attention is a far smaller share of a token's cost (w = 4.0e-5), a 25-token prompt's pair
  already pays. Only for eager and sdpa attention (flash kernels take no custom mask); at most MAX_SHARED_ROWS
  responses per sequence.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from benchcore.errors import InputError
from benchcore.fileio import write_bytes_atomic

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Default padded-token budget per batch on an accelerator: ~8k tokens of a 7B model in bf16 fit easily on one
#: 80 GB GPU with activations kept only up to the stop layer.
DEFAULT_BATCH_TOKENS = 8192
#: ... and on CPU, where the budget sets cache friendliness: bench/attribution_throughput.py on SmolLM2-135M
#: (2 cores) measured 60% of the bf16 matmul peak at 512 tokens against 48% at 4096.
DEFAULT_BATCH_TOKENS_CPU = 512
#: Responses that share one prompt's forward pass at most (the dense mask is quadratic in the packed length).
MAX_SHARED_ROWS = 8
#: Attention implementations that honour a custom 4D mask; others run every row as its own sequence.
MASKABLE_ATTENTION = ("eager", "sdpa")
#: Rows per shard file when streaming to disk.
DEFAULT_SHARD_ROWS = 2048
INDEX_PREFIX = "index-rank"
META_FILE = "meta.json"


@dataclass(frozen=True)
class Encoded:
    """Token ids of one teacher-forced sequence; the response occupies positions [start, len(ids))."""

    ids: tuple[int, ...]
    start: int

    @property
    def n_response(self) -> int:
        return len(self.ids) - self.start


@dataclass(frozen=True)
class Unit:
    """One forward sequence: a prompt followed by the response of every row in `rows` that shares it (a single
    row is the plain teacher-forced sequence). spans[k] is row rows[k]'s response, [start, end) in ids."""

    rows: tuple[int, ...]
    ids: tuple[int, ...]
    prefix: int
    spans: tuple[tuple[int, int], ...]

    @property
    def shared(self) -> bool:
        return len(self.rows) > 1

    def segments(self) -> list[int]:
        """Per token: 0 in the prompt, k for the k-th response (1-based)."""
        out = [0] * self.prefix
        for k, (a, b) in enumerate(self.spans, start=1):
            out.extend([k] * (b - a))
        return out

    def positions(self) -> list[int]:
        """Per token: where it would sit in its own unpacked sequence."""
        out = list(range(self.prefix))
        for a, b in self.spans:
            out.extend(range(self.prefix, self.prefix + b - a))
        return out


def _alone(i: int, e: Encoded) -> Unit:
    return Unit((i,), e.ids, e.start, ((e.start, len(e.ids)),))


def pack_units(encoded: Sequence[Encoded], share_prompt: bool = True, max_rows: int = MAX_SHARED_ROWS,
               attention_weight: float = 0.0) -> list[Unit]:
    """Group rows with identical prompt tokens into shared sequences (first-seen order, at most max_rows each)
    where that is cheaper; rows with no prompt tokens, or with share_prompt off, run alone.

    Sharing is not free: the packed sequence is longer, and under the custom mask its attention scores are
    computed for every (query, key) pair, the other responses' included, where a plain causal sequence needs
    about half of its square. A group is shared only when L + w L^2 for the packed length is below the sum of
    L_i + w L_i^2 / 2 over its rows run alone, w = attention_weight (the cost of one score pair relative to one
    token through the layer's linear maps, see attention_weight()). The module docstring has what this rule
    measured on SmolLM2-135M."""
    groups: dict[tuple[int, ...], list[int]] = {}
    units: list[Unit] = []
    for i, e in enumerate(encoded):
        if share_prompt and e.start > 0:
            groups.setdefault(e.ids[: e.start], []).append(i)
        else:
            units.append(_alone(i, e))
    for prefix, rows in groups.items():
        for k in range(0, len(rows), max_rows):
            chunk = rows[k: k + max_rows]
            ids = list(prefix)
            spans = []
            for i in chunk:
                response = encoded[i].ids[encoded[i].start:]
                spans.append((len(ids), len(ids) + len(response)))
                ids.extend(response)
            alone = sum(len(encoded[i].ids) + attention_weight * len(encoded[i].ids) ** 2 / 2 for i in chunk)
            if len(chunk) > 1 and len(ids) + attention_weight * len(ids) ** 2 < alone:
                units.append(Unit(tuple(chunk), tuple(ids), len(prefix), tuple(spans)))
            else:
                units.extend(_alone(i, encoded[i]) for i in chunk)
    units.sort(key=lambda u: u.rows[0])
    return units


def can_share_prompt(model: Any) -> bool:
    """Whether this model's attention takes the custom mask that prompt sharing needs."""
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None) in MASKABLE_ATTENTION


def attention_weight(decoder: Any) -> float:
    """FLOPs of one attention score pair (q.k and the weighted value: 4 x the attention width) over those of one
    token through a decoder layer's linear maps (2 x their weights)."""
    from organism.models.compute_cost import linear_weights

    weights = linear_weights([decoder.layers[0]])
    config = getattr(decoder, "config", None)
    heads = getattr(config, "num_attention_heads", None)
    head_dim = getattr(config, "head_dim", None) or (config.hidden_size // heads if heads else None)
    width = heads * head_dim if heads and head_dim else int(decoder.embed_tokens.weight.shape[1])
    return 4 * width / (2 * weights)


def plan_units(model: Any, encoded: Sequence[Encoded], share_prompt: bool = True) -> list[Unit]:
    """The engine's forward sequences for `encoded` on this model (shared prompts where the model's attention
    allows it and the cost rule of pack_units says it pays)."""
    decoder = _decoder(model)
    share = share_prompt and can_share_prompt(model)
    return pack_units(encoded, share, attention_weight=attention_weight(decoder) if share else 0.0)


class _Stop(Exception):
    """Raised from the deepest hook: nothing after that layer needs to run."""


# ------------------------------------------------------------------------------------------------ tokenizing
def encode_pair(tokenizer: Any, prompt: str, response: str, *, chat_template: bool = False,
                max_length: int | None = None) -> Encoded:
    """Token ids for (prompt, response) and where the response starts.

    Raw text (the paper's way): tokenizer(prompt) with its special tokens, then tokenizer(response) without.
    With chat_template: the prompt as one user turn rendered with the generation prompt; the response tokens are
    whatever the full two-turn rendering adds after it (end-of-turn tokens included), falling back to the raw
    response tokens when the template does not render the prompt as a prefix.
    With max_length, the response is cut at the end and, if the prompt alone is too long, the prompt is cut at
    its START (the tokens next to the response matter most); at least one response token is kept.
    """
    if chat_template:
        if not getattr(tokenizer, "chat_template", None):
            raise InputError(getattr(tokenizer, "name_or_path", None) or "tokenizer", "chat_template",
                             "this tokenizer has no chat template; teacher-force raw text instead")
        user = [{"role": "user", "content": prompt}]
        p_text = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        full_text = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": response}],
                                                  tokenize=False)
        p_ids = list(tokenizer(p_text, add_special_tokens=False)["input_ids"])
        full = list(tokenizer(full_text, add_special_tokens=False)["input_ids"])
        if full[: len(p_ids)] == p_ids and len(full) > len(p_ids):
            r_ids = full[len(p_ids):]
        else:
            r_ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    else:
        p_ids = list(tokenizer(prompt)["input_ids"])
        r_ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    return _cut(p_ids, r_ids, max_length)


def encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]], *, chat_template: bool = False,
                 max_length: int | None = None, chunk: int = 4096) -> list[Encoded]:
    """encode_pair for many pairs; raw text is tokenized in batched calls (the Rust tokenizer runs them in
    parallel), which matters at 757k sequences."""
    if chat_template:
        return [encode_pair(tokenizer, p, r, chat_template=True, max_length=max_length) for p, r in pairs]
    out: list[Encoded] = []
    for start in range(0, len(pairs), chunk):
        part = pairs[start: start + chunk]
        p_ids = tokenizer([p for p, _ in part])["input_ids"]
        r_ids = tokenizer([r for _, r in part], add_special_tokens=False)["input_ids"]
        out.extend(_cut(list(a), list(b), max_length) for a, b in zip(p_ids, r_ids))
    return out


def _cut(p_ids: list[int], r_ids: list[int], max_length: int | None) -> Encoded:
    if max_length is not None and len(p_ids) + len(r_ids) > max_length:
        keep_r = max(1, min(len(r_ids), max_length - len(p_ids)))
        r_ids = r_ids[:keep_r]
        keep_p = max_length - len(r_ids)
        p_ids = p_ids[len(p_ids) - keep_p:] if keep_p > 0 else []
    return Encoded(tuple(p_ids) + tuple(r_ids), len(p_ids))


def resolve_batch_tokens(batch_tokens: int | None, device: Any) -> int:
    """An explicit budget, or the default for the device the forward passes run on (None = auto)."""
    if batch_tokens is not None:
        return batch_tokens
    return DEFAULT_BATCH_TOKENS_CPU if str(device).split(":")[0] == "cpu" else DEFAULT_BATCH_TOKENS


def plan_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Indices grouped so that batch_size * longest <= batch_tokens (a lone over-long sequence gets its own batch).

    Longest first, so an out-of-memory shows up in the first batch rather than hours in; ties by index so the
    plan (and with it which rank runs what) is the same on every rank and every run.
    """
    if batch_tokens < 1:
        raise InputError(None, "batch_tokens", f"must be at least 1, got {batch_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_max = 0
    for i in order:
        longest = max(cur_max, lengths[i])
        if cur and longest * (len(cur) + 1) > batch_tokens:
            batches.append(cur)
            cur, longest = [], lengths[i]
        cur.append(i)
        cur_max = longest
    if cur:
        batches.append(cur)
    return batches


# ------------------------------------------------------------------------------------------------ the forward
def _decoder(model: Any) -> Any:
    """The module that owns `layers` (LlamaModel inside LlamaForCausalLM, or the base model itself)."""
    for cand in (getattr(model, "model", None), model):
        if cand is not None and hasattr(cand, "layers") and hasattr(cand, "embed_tokens"):
            return cand
    raise InputError(type(model).__name__, "model", "no decoder with .layers and .embed_tokens found")


def _check_layers(layers: Sequence[int], n_layers: int) -> tuple[int, ...]:
    out = tuple(int(x) for x in layers)
    if not out:
        raise InputError(None, "layers", "ask for at least one layer")
    for x in out:
        if not 0 <= x <= n_layers:
            raise InputError(None, "layer", f"hidden_states index {x} is outside 0..{n_layers} for this model")
    return out


def _shared_attention(batch: Sequence[Unit], width: int, dtype: Any) -> tuple["torch.Tensor", "torch.Tensor"]:
    """The additive [B, 1, W, W] mask and [B, W] position ids of a batch holding shared units: a token sees the
    earlier tokens of the prompt and of its own response; a pad sees itself (no row is all masked, so no NaN)."""
    import torch

    n = len(batch)
    seg = torch.full((n, width), -1, dtype=torch.long)
    pos = torch.zeros((n, width), dtype=torch.long)
    for b, u in enumerate(batch):
        seg[b, : len(u.ids)] = torch.tensor(u.segments(), dtype=torch.long)
        pos[b, : len(u.ids)] = torch.tensor(u.positions(), dtype=torch.long)
    q, k = seg.unsqueeze(2), seg.unsqueeze(1)
    idx = torch.arange(width)
    allowed = (idx.view(1, 1, width) <= idx.view(1, width, 1)) & (k >= 0) & ((k == 0) | (k == q))
    allowed |= torch.eye(width, dtype=torch.bool)
    mask = torch.zeros((n, 1, width, width), dtype=dtype)
    mask.masked_fill_(~allowed.unsqueeze(1), torch.finfo(dtype).min)
    return mask, pos


def _forward_means(decoder: Any, batch: Sequence[Unit], layers: tuple[int, ...], pad_id: int,
                   device: Any) -> "torch.Tensor":
    """[rows, len(layers), H] float32 response means for one right-padded batch of units, stopping at
    max(layers); rows in the order of the units' rows."""
    import torch

    n = len(batch)
    width = max(len(u.ids) for u in batch)
    slots = max(len(u.rows) for u in batch)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    resp = torch.zeros((n, slots, width), dtype=torch.float32)
    for b, u in enumerate(batch):
        ids[b, : len(u.ids)] = torch.tensor(u.ids, dtype=torch.long)
        for k, (a, z) in enumerate(u.spans):
            resp[b, k, a:z] = 1.0
    extra: dict[str, Any] = {}
    if any(u.shared for u in batch):
        mask, pos = _shared_attention(batch, width, decoder.embed_tokens.weight.dtype)
        extra = {"attention_mask": mask.to(device), "position_ids": pos.to(device)}
    ids, resp = ids.to(device), resp.to(device)
    counts = resp.sum(2, keepdim=True)  # [B, K, 1]; zero -> NaN mean, reported by the caller

    n_layers = len(decoder.layers)
    deepest = max(layers)
    captured: dict[int, torch.Tensor] = {}

    def mean_of(h: "torch.Tensor") -> "torch.Tensor":
        # fp32 accumulation: a [B, K, T] x [B, T, H] product in float32
        return torch.bmm(resp, h.float()) / counts

    def on_output(idx: int):
        def hook(_mod: Any, _args: Any, output: Any) -> None:
            h = output[0] if isinstance(output, tuple) else output
            if idx == n_layers:
                h = decoder.norm(h)  # HF's last hidden_states entry is after the final norm
            if idx in layers:
                captured[idx] = mean_of(h)
            if idx == deepest:
                raise _Stop
        return hook

    def on_input(_mod: Any, args: Any, kwargs: Any) -> None:
        h = args[0] if args else kwargs["hidden_states"]
        captured[0] = mean_of(h)
        if deepest == 0:
            raise _Stop

    handles = []
    try:
        if 0 in layers:
            handles.append(decoder.layers[0].register_forward_pre_hook(on_input, with_kwargs=True))
        for idx in sorted(set(layers) | {deepest}):
            if idx >= 1:
                handles.append(decoder.layers[idx - 1].register_forward_hook(on_output(idx)))
        try:
            # Right padding + causal attention: a real token never attends to a later position, so never to a
            # pad, and the pad rows are excluded from the mean. Without shared units no mask is passed, which
            # keeps the forward on the pure-causal attention path (no 4D mask built, fused causal kernels skip
            # the masked half); the equality tests against the unpadded forward guard both paths.
            decoder(input_ids=ids, use_cache=False, **extra)
        except _Stop:
            pass
    finally:
        for h in handles:
            h.remove()
    means = torch.stack([captured[idx] for idx in layers], dim=2)  # [B, K, L, H]
    b_idx = [b for b, u in enumerate(batch) for _ in u.rows]
    k_idx = [k for u in batch for k in range(len(u.rows))]
    return means[b_idx, k_idx]


# ------------------------------------------------------------------------------------------------ shards
def _check_meta(shard_dir: Path, meta: Mapping[str, Any]) -> None:
    """A shard folder belongs to one (model, layers, tokenization) setting: refuse to mix settings."""
    path = shard_dir / META_FILE
    want = json.loads(json.dumps(dict(meta), sort_keys=True, default=str))
    if path.exists():
        have = json.loads(path.read_text(encoding="utf-8"))
        if have != want:
            diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            raise InputError(shard_dir, "meta", f"shards were written with other settings ({', '.join(diff)}); "
                             "use another --shard-dir or delete this one")
    else:
        shard_dir.mkdir(parents=True, exist_ok=True)
        try:
            write_bytes_atomic(path, json.dumps(want, indent=2, sort_keys=True).encode())
        except FileExistsError:  # pragma: no cover - another rank won the race
            pass


def read_index(shard_dir: str | os.PathLike) -> dict[str, tuple[str, int]]:
    """id -> (shard file name, row) over every rank's index in the folder.

    An index is append-only JSONL, one line per shard, written after its shard file landed (atomically); a line
    cut short by a kill is ignored, so its rows are simply computed again.
    """
    shard_dir = Path(shard_dir)
    where: dict[str, tuple[str, int]] = {}
    for idx_file in sorted(shard_dir.glob(f"{INDEX_PREFIX}*.jsonl")):
        try:
            lines = idx_file.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise InputError(idx_file, "index", f"unreadable shard index: {e}") from e
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line
            if not isinstance(entry, dict) or not (shard_dir / str(entry.get("shard"))).is_file():
                continue
            for row, x in enumerate(entry.get("ids", [])):
                where.setdefault(x, (entry["shard"], row))
    return where


class ShardWriter:
    """Appends safetensors shards for one rank and one index line per shard (the shard is written first).

    A kill loses at most the rows not yet flushed. Appending keeps the index cost linear in the number of rows
    (a 757k-sequence run writes hundreds of shards).
    """

    def __init__(self, shard_dir: Path, rank: int, shard_rows: int) -> None:
        self.dir = shard_dir
        self.rank = rank
        self.shard_rows = max(1, shard_rows)
        self.index_path = shard_dir / f"{INDEX_PREFIX}{rank:05d}.jsonl"
        self.pending_ids: list[str] = []
        self.pending: list["torch.Tensor"] = []

    def add(self, ids: Sequence[str], acts: "torch.Tensor") -> None:
        self.pending_ids.extend(ids)
        self.pending.extend(acts.unbind(0))
        if len(self.pending_ids) >= self.shard_rows:
            self.flush()

    def flush(self) -> None:
        if not self.pending_ids:
            return
        import torch
        from safetensors.torch import save

        seq = 0
        name = f"shard-r{self.rank:05d}-{seq:06d}.safetensors"
        while (self.dir / name).exists():
            seq += 1
            name = f"shard-r{self.rank:05d}-{seq:06d}.safetensors"
        blob = save({"acts": torch.stack(self.pending).contiguous()}, metadata={"ids": json.dumps(self.pending_ids)})
        write_bytes_atomic(self.dir / name, blob)
        torn = False
        if self.index_path.exists() and self.index_path.stat().st_size:
            with open(self.index_path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"  # a kill mid-line: start on a fresh line
        with open(self.index_path, "a", encoding="utf-8") as f:
            f.write(("\n" if torn else "") + json.dumps({"shard": name, "ids": self.pending_ids}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.pending_ids, self.pending = [], []


def load_from_shards(shard_dir: str | os.PathLike, ids: Sequence[str]) -> "torch.Tensor":
    """The rows for `ids`, in that order, gathered from every rank's shards (the merge step)."""
    import torch
    from safetensors.torch import load_file

    shard_dir = Path(shard_dir)
    if not ids:
        return torch.empty((0,), dtype=torch.float32)
    where = read_index(shard_dir)
    missing = [x for x in ids if x not in where]
    if missing:
        raise InputError(shard_dir, "id", f"{len(missing)} ids have no activations in the shards "
                         f"(first: {missing[0]!r}); did every rank finish?")
    by_file: dict[str, list[tuple[int, int]]] = {}
    for pos, x in enumerate(ids):
        name, row = where[x]
        by_file.setdefault(name, []).append((pos, row))
    out: torch.Tensor | None = None
    for name, rows in by_file.items():
        acts = load_file(str(shard_dir / name))["acts"]
        if out is None:
            out = torch.empty((len(ids), *acts.shape[1:]), dtype=torch.float32)
        pos_t = torch.tensor([p for p, _ in rows])
        row_t = torch.tensor([r for _, r in rows])
        out[pos_t] = acts[row_t].float()
    assert out is not None
    return out


# ------------------------------------------------------------------------------------------------ public API
def _dist_env() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _barrier(world_size: int) -> None:
    if world_size <= 1:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if _cuda() else "gloo")
    dist.barrier()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _iter_batches(units: Sequence[Unit], skip: set[int], batch_tokens: int, rank: int,
                  world_size: int) -> Iterator[list[Unit]]:
    """This rank's batches of units. The plan covers ALL units, so every rank (and every restart) agrees on which
    bucket belongs to whom however many rows other ranks have already written; a unit whose rows are all done
    is dropped afterwards."""
    plan = plan_batches([len(u.ids) for u in units], batch_tokens)
    for b, batch in enumerate(plan):
        if b % world_size == rank:
            left = [units[i] for i in batch if not all(r in skip for r in units[i].rows)]
            if left:
                yield left


def mean_response_activations(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    layers: Sequence[int],
    *,
    batch_tokens: int | None = None,
    chat_template: bool = False,
    dtype: Any = None,
    max_length: int | None = None,
    shard_dir: str | os.PathLike | None = None,
    ids: Sequence[str] | None = None,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    meta: Mapping[str, Any] | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    merge: bool = True,
    progress: Any = None,
    share_prompt: bool = True,
) -> "torch.Tensor":
    """[n, len(layers), hidden] float32 mean response activations at HF hidden_states indices `layers`.

    dtype: the compute dtype; None uses the model as loaded. A different dtype casts the model for the call and
    casts it back (the caller loaded it; we leave it as we found it).
    shard_dir + ids: stream results to resumable shards keyed by id (ids must be unique); `meta` (e.g. the model
    identity) is stored and checked so a folder is never reused for another setting. rank / world_size default
    to RANK / WORLD_SIZE; with merge=False a rank returns nothing (None) after writing its shards (used to
    simulate ranks in one process); otherwise every rank returns the full merged tensor.
    Rows whose response has no tokens come back as NaN.
    progress: an optional callable(n_done_rows) called after each batch.
    share_prompt: run rows with the same prompt tokens as one sequence where the model's attention allows it
    (the same numbers; off only to measure what it saves).
    """
    import torch

    env_rank, env_world = _dist_env()
    rank = env_rank if rank is None else rank
    world_size = env_world if world_size is None else world_size
    if world_size > 1 and shard_dir is None:
        raise InputError(None, "shard_dir", "data-parallel runs (WORLD_SIZE > 1) need a shard folder")
    if shard_dir is not None and ids is None:
        raise InputError(None, "ids", "a shard folder needs pair ids to key the shards")
    if ids is not None:
        ids = [str(x) for x in ids]
        if len(ids) != len(pairs):
            raise InputError(None, "ids", f"{len(ids)} ids for {len(pairs)} pairs")
        if len(set(ids)) != len(ids):
            raise InputError(None, "ids", "ids must be unique")

    decoder = _decoder(model)
    layer_t = _check_layers(layers, len(decoder.layers))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    encoded = encode_pairs(tokenizer, pairs, chat_template=chat_template, max_length=max_length)
    units = plan_units(model, encoded, share_prompt)

    hidden = int(decoder.embed_tokens.weight.shape[1])
    # only without shards is the result kept in memory here; with shards it is read back once at the end
    out = None if shard_dir is not None else torch.full((len(pairs), len(layer_t), hidden), float("nan"),
                                                        dtype=torch.float32)
    skip: set[int] = set()
    writer: ShardWriter | None = None
    sdir = Path(shard_dir) if shard_dir is not None else None
    if sdir is not None:
        full_meta = {"layers": list(layer_t), "chat_template": chat_template, "max_length": max_length,
                     **dict(meta or {})}
        _check_meta(sdir, full_meta)
        done = read_index(sdir)
        assert ids is not None
        skip = {i for i, x in enumerate(ids) if x in done}
        writer = ShardWriter(sdir, rank, shard_rows)

    param = next(model.parameters())
    device = param.device
    batch_tokens = resolve_batch_tokens(batch_tokens, device)
    old_dtype = param.dtype
    if dtype is not None and dtype != old_dtype:
        model.to(dtype)
    try:
        with torch.inference_mode():
            n_done = 0
            for batch in _iter_batches(units, skip, batch_tokens, rank, world_size):
                means = _forward_means(decoder, batch, layer_t, pad_id, device).cpu()
                rows = [r for u in batch for r in u.rows]
                if writer is not None:
                    assert ids is not None
                    keep = [j for j, r in enumerate(rows) if r not in skip]  # a shared unit may be half done
                    writer.add([ids[rows[j]] for j in keep], means[keep])
                else:
                    assert out is not None
                    out[torch.tensor(rows)] = means
                n_done += len(rows)
                if progress is not None:
                    progress(n_done)
        if writer is not None:
            writer.flush()
    finally:
        if dtype is not None and dtype != old_dtype:
            model.to(old_dtype)

    if sdir is None:
        assert out is not None
        return out
    if not merge:
        return None  # type: ignore[return-value]
    _barrier(world_size)
    assert ids is not None
    return load_from_shards(sdir, ids)


def naive_mean_response_activations(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]],
                                    layers: Sequence[int], *, chat_template: bool = False) -> "torch.Tensor":
    """The authors' way, kept as the reference for tests and the throughput bench: one pair at a time, full
    depth, `output_hidden_states=True`, logits computed and thrown away."""
    import torch

    rows = []
    with torch.inference_mode():
        for p, r in pairs:
            e = encode_pair(tokenizer, p, r, chat_template=chat_template)
            ids = torch.tensor([e.ids], device=next(model.parameters()).device)
            hs = model(input_ids=ids, output_hidden_states=True).hidden_states
            rows.append(torch.stack([hs[l][0, e.start:].float().mean(0) for l in layers]).cpu())
    return torch.stack(rows)
