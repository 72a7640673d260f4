"""Generation backends with a content-addressed cache: only cache misses are generated, each batch is written to
the cache as soon as it finishes, so a killed run resumes where it stopped and a re-run costs nothing.

Seeding design (why a resumed run equals an uninterrupted one, whatever the batching):
every (prompt, sample index) owns a stream of uniforms drawn up front from its own `torch.Generator`, seeded by
sha256(seed, rendered-prompt sha256, sample index). At generated step t the row's token is the inverse CDF of
its (temperature-scaled, top-p-filtered) next-token distribution at u[t], taken in vocabulary order. No random
state is shared between rows, so neither the batch a row lands in, nor the device count, nor which rows were
already cached changes its draws. (Batch composition can still move logits by float rounding of padded matmuls;
a token flips only if u[t] falls within that rounding of a CDF boundary.) Greedy decoding (temperature 0) is
deterministic, so its cache key drops the seed and sample index: n greedy samples of a prompt are generated once.

The HF backend runs its own KV-cached decode loop rather than `model.generate`: the model's own
generation_config (repetition penalties, default sampling) cannot leak in, the per-row sampler above is exact,
and the new tokens are collected step by step, so the output is cut at the PADDED input length by construction
(the source sliced at the unpadded length and lost or repeated tokens). Prompts are left-padded, with position ids
computed from the attention mask, and batches are sorted by length to waste little on padding.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmark.generation.cache import GenerationCache, canonical_json, make_key, text_sha256
from benchcore.errors import InputError

SAMPLER_VERSION = "inverse-cdf-v1"  # enters sampled cache keys: a change of sampler must not reuse old samples
OnBatch = Callable[[int, int], None]


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt: chat messages [{role, content}, ...] (the chat template is applied), or already rendered text
    (tokenized as is, no special tokens added)."""

    prompt_id: str
    messages: Sequence[Mapping[str, str]] | str

    @classmethod
    def user(cls, prompt_id: str, text: str) -> "GenerationRequest":
        """A single-turn user prompt: how every suite prompt is sent, so each caller's cache keys agree."""
        return cls(prompt_id, [{"role": "user", "content": text}])


@dataclass(frozen=True)
class GenConfig:
    max_new_tokens: int = 100
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    n: int = 1  # samples per prompt
    seed: int = 0
    batch_size: int | str = "auto"

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> InputError:
            return InputError("gen_kwargs", name, why)

        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or \
                self.max_new_tokens < 1:
            raise bad("max_new_tokens", f"must be an integer >= 1, got {self.max_new_tokens!r}")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) or \
                not math.isfinite(self.temperature) or self.temperature < 0:
            raise bad("temperature", f"must be a number >= 0, got {self.temperature!r}")
        if isinstance(self.top_p, bool) or not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise bad("top_p", f"must be in (0, 1], got {self.top_p!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise bad("n", f"must be an integer >= 1, got {self.n!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise bad("seed", f"must be an integer >= 0, got {self.seed!r}")
        if self.batch_size != "auto" and (isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int)
                                          or self.batch_size < 1):
            raise bad("batch_size", f"must be 'auto' or an integer >= 1, got {self.batch_size!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_key_dict(self) -> dict[str, Any]:
        """What changes the text: never n, batch size or device. Greedy ignores temperature/top_p entirely."""
        if self.greedy:
            return {"max_new_tokens": self.max_new_tokens, "decoding": "greedy"}
        return {"max_new_tokens": self.max_new_tokens, "decoding": SAMPLER_VERSION,
                "temperature": float(self.temperature), "top_p": float(self.top_p)}

    def key_seed_index(self, sample_index: int) -> tuple[int, int]:
        return (0, 0) if self.greedy else (self.seed, sample_index)


@dataclass(frozen=True)
class Generation:
    prompt_id: str
    sample_index: int
    rendered_prompt: str
    response: str
    n_tokens: int  # generated tokens, the stop token included
    finish_reason: str = ""  # "stop" (an end token) or "length" (max_new_tokens reached)
    key: str = ""  # its generation-cache key
    source: str = "computed"  # "computed" (here, now), "cache" (this machine, earlier) or "shipped" (the organism's)

    @property
    def cached(self) -> bool:
        return self.source != "computed"


def sample_seed(seed: int, prompt_sha256: str, sample_index: int) -> int:
    """The 63-bit seed of one (prompt, sample index) stream: independent of batching and run order."""
    digest = hashlib.sha256(f"{seed}|{prompt_sha256}|{sample_index}".encode()).hexdigest()
    return int(digest[:16], 16) >> 1


def uniform_stream(seed: int, prompt_sha256: str, sample_index: int, length: int):
    import torch

    gen = torch.Generator(device="cpu").manual_seed(sample_seed(seed, prompt_sha256, sample_index))
    return torch.rand(length, generator=gen, dtype=torch.float64)


def sample_tokens(logits, uniforms, temperature: float, top_p: float):
    """Per-row inverse-CDF sampling: logits [B, V], uniforms [B] in [0, 1) -> token ids [B]."""
    import torch

    probs = torch.softmax(logits.float() / temperature, dim=-1).double()
    if top_p < 1.0:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True, stable=True)
        mass_before = sorted_p.cumsum(-1) - sorted_p
        keep_sorted = mass_before < top_p
        keep_sorted[..., 0] = True
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        probs = probs * keep
    cdf = probs.cumsum(-1)
    target = uniforms.to(cdf.device, torch.float64) * cdf[:, -1]
    tokens = torch.searchsorted(cdf, target.unsqueeze(-1), right=True).squeeze(-1)
    return tokens.clamp_(max=probs.shape[-1] - 1)


# ----------------------------------------------------------------------------------------------------------------
# the cached runner every backend shares


@dataclass
class _Unit:
    key: str
    text: str
    prompt_sha: str
    seed: int
    sample_index: int
    length: int = 0


class CachedBackend:
    """Render, look up, generate only the misses in length-sorted batches, write every batch to the cache."""

    engine = "base"

    def __init__(self, identity: str, cache: GenerationCache | None, system_prompt: str | None) -> None:
        if not isinstance(identity, str) or not identity:
            raise InputError("backend", "identity", "a model identity string (repo@revision, dtype...) is needed")
        self.identity = identity
        self.cache = cache
        self.system_prompt = system_prompt

    # backends implement these
    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        raise NotImplementedError

    def prompt_length(self, text: str) -> int:
        return len(text)

    def auto_batch_size(self, max_prompt_len: int, config: GenConfig) -> int:
        return 8

    def generate_batch(self, units: list[_Unit], config: GenConfig) -> list[dict[str, Any]]:
        raise NotImplementedError

    def cache_identity(self) -> str:
        """What enters the cache key as "model": the engine plus the caller's identity (plus steering)."""
        return f"{self.engine}|{self.identity}"

    # shared
    def with_system_prompt(self, messages: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
        msgs = [dict(m) for m in messages]
        if self.system_prompt is None:
            return msgs
        if msgs and msgs[0].get("role") == "system":
            msgs[0]["content"] = f"{self.system_prompt}\n\n{msgs[0].get('content', '')}"
            return msgs
        return [{"role": "system", "content": self.system_prompt}, *msgs]

    def rendered(self, request: GenerationRequest) -> str:
        if isinstance(request.messages, str):
            if self.system_prompt is not None:
                raise InputError(request.prompt_id, "messages", "an inference-time system prompt needs chat "
                                                                "messages, not pre-rendered text")
            return request.messages
        if not request.messages:
            raise InputError(request.prompt_id, "messages", "no messages")
        for m in request.messages:
            if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or \
                    not isinstance(m.get("content"), str):
                raise InputError(request.prompt_id, "messages", "each message needs string role and content")
        return self.render(self.with_system_prompt(request.messages))

    def generate(self, requests: Sequence[GenerationRequest], config: GenConfig,
                 progress: OnBatch | None = None) -> list[Generation]:
        """One Generation per (request, sample index), in request order then sample order."""
        identity = self.cache_identity()
        key_kwargs = config.to_key_dict()
        slots: list[tuple[str, int, str, str]] = []  # (prompt_id, sample_index, rendered, key)
        units: dict[str, _Unit] = {}
        results: dict[str, tuple[dict[str, Any], bool]] = {}
        for req in requests:
            text = self.rendered(req)
            sha = text_sha256(text)
            for i in range(config.n):
                kseed, kindex = config.key_seed_index(i)
                key = make_key(identity, sha, key_kwargs, kseed, kindex)
                slots.append((req.prompt_id, i, text, key))
                if key in units:
                    continue
                units[key] = _Unit(key, text, sha, kseed, kindex)
                hit = self.cache.get(key) if self.cache is not None else None
                if hit is not None:
                    results[key] = (hit, self.cache.source(key))
        slot_count: dict[str, int] = {}
        for *_, key in slots:
            slot_count[key] = slot_count.get(key, 0) + 1
        total = len(slots)
        done_slots = sum(slot_count[k] for k in results)
        if progress is not None:
            progress(done_slots, total)
        # Batches are formed over ALL units, cached or not, and a batch with any miss is generated whole. Low
        # precision (bf16) numerics depend on who shares a padded batch, so this is what makes a resumed run
        # reproduce an uninterrupted one exactly: the batch that was cut off is regenerated with the same rows.
        ordered = list(units.values())
        for u in ordered:
            u.length = self.prompt_length(u.text)
        # longest first: the first batch shows at once whether memory suffices
        ordered.sort(key=lambda u: (-u.length, u.key))
        size = config.batch_size
        if size == "auto":
            size = self.auto_batch_size(ordered[0].length if ordered else 1, config)
        for start in range(0, len(ordered), size):
            batch = ordered[start:start + size]
            if all(u.key in results for u in batch):
                continue
            values = self.generate_batch(batch, config)
            fresh = [(u, v) for u, v in zip(batch, values) if u.key not in results]
            if self.cache is not None:
                self.cache.put_many((u.key, v) for u, v in fresh)
            for u, v in fresh:
                results[u.key] = (v, "computed")
                done_slots += slot_count[u.key]
            if progress is not None:
                progress(done_slots, total)
        out = []
        for prompt_id, i, text, key in slots:
            value, source = results[key]
            out.append(Generation(prompt_id=prompt_id, sample_index=i, rendered_prompt=text,
                                  response=value["response"], n_tokens=int(value["n_tokens"]),
                                  finish_reason=value.get("finish_reason", ""),
                                  key=key, source=source))
        return out


# ----------------------------------------------------------------------------------------------------------------
# Hugging Face transformers


class HFBackend(CachedBackend):
    """Generation with a loaded transformers causal LM (a PEFT-wrapped one too), optionally steered.

    `steering`: None, a `benchmark.evaluation.spec.SteeringSpec`, or a mapping {vector: tensor or path, layer, scale, mode,
    positions}; it enters the cache identity through the vector's bytes and its settings.
    """

    engine = "hf"
    drop_finished_rows = True  # bench/generation_speed.py times the loop without it, side by side

    def __init__(self, model: Any, tokenizer: Any, identity: str, cache: GenerationCache | None = None,
                 system_prompt: str | None = None, device: Any = None, steering: Any = None) -> None:
        super().__init__(identity, cache, system_prompt)
        import torch

        self.model = model
        self.tokenizer = tokenizer
        first = next(model.parameters())
        self.device = torch.device(device) if device is not None else first.device
        self.dtype = first.dtype
        self.steering = _normalize_steering(steering)
        self.eos_ids = _eos_ids(model, tokenizer)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = pad if isinstance(pad, int) else (min(self.eos_ids) if self.eos_ids else 0)
        import inspect

        params = inspect.signature(model.forward).parameters
        self._logits_to_keep = "logits_to_keep" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())

    def cache_identity(self) -> str:
        base = super().cache_identity()
        if self.steering is None:
            return base
        vector, layer, scale, mode, positions = self.steering
        h = hashlib.sha256(vector.float().contiguous().numpy().tobytes()).hexdigest()
        return f"{base}|steer:{canonical_json([h, layer, scale, mode, positions])}"

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise InputError("tokenizer", "chat_template", "this tokenizer has no chat template; pass rendered text")
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        if not isinstance(text, str):  # some versions hand back a list for a single conversation
            text = text[0]
        return text

    def _encode(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return list(ids)

    def prompt_length(self, text: str) -> int:
        return len(self._encode(text))

    def auto_batch_size(self, max_prompt_len: int, config: GenConfig) -> int:
        """As many rows as fit in a share of free memory (CUDA: 60% of free device memory; CPU: 30% of total
        RAM), counting per row the KV cache for prompt + new tokens, the float32/float64 sampling buffers over the
        vocabulary and the prefill activations; capped at 256 rows on CUDA and 64 on CPU. On CPU, per-step
        overhead dominates small models: greedy SmolLM2-135M bf16 on 2 cores measured 224 / 340 / 437 / 760
        new tokens/s at batch 8 / 16 / 32 / 64."""
        import os

        import torch

        cfg = getattr(self.model, "config", None)
        layers = getattr(cfg, "num_hidden_layers", 32)
        hidden = getattr(cfg, "hidden_size", 4096)
        heads = getattr(cfg, "num_attention_heads", 32)
        kv_heads = getattr(cfg, "num_key_value_heads", heads) or heads
        head_dim = getattr(cfg, "head_dim", None) or hidden // heads
        inter = getattr(cfg, "intermediate_size", 4 * hidden)
        vocab = getattr(cfg, "vocab_size", 50000)
        elem = torch.finfo(self.dtype).bits // 8 if self.dtype.is_floating_point else 2
        tokens = max_prompt_len + config.max_new_tokens
        kv = 2 * layers * kv_heads * head_dim * elem * tokens
        sampling = vocab * (4 + 4 + 8 + 8)
        prefill = max_prompt_len * (3 * inter + 4 * hidden) * elem  # logits only at the last position
        per_row = kv + sampling + prefill
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return int(max(1, min(256, (0.6 * free) // per_row)))
        try:  # total, not available, RAM: the batch size (and so bf16 numerics) must not vary between runs
            free = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = 4 << 30
        return int(max(1, min(64, (0.3 * free) // per_row)))

    def generate_batch(self, units: list[_Unit], config: GenConfig) -> list[dict[str, Any]]:
        import contextlib

        import torch

        encoded = [self._encode(u.text) for u in units]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(units), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(units), width), dtype=torch.long)
        for row, e in enumerate(encoded):  # LEFT padding: every row's last prompt token is at column width-1
            if e:
                ids[row, width - len(e):] = torch.tensor(e, dtype=torch.long)
                mask[row, width - len(e):] = 1
        uniforms = None
        if not config.greedy:
            uniforms = torch.stack([uniform_stream(u.seed, u.prompt_sha, u.sample_index, config.max_new_tokens)
                                    for u in units])
        steer_ctx: Any = contextlib.nullcontext()
        if self.steering is not None:
            from organism.models.steering import steer

            vector, layer, scale, mode, positions = self.steering
            steer_ctx = steer(self.model, vector, layer, scale=scale, mode=mode, positions=positions)
        was_training = self.model.training
        self.model.eval()
        try:
            with steer_ctx, torch.inference_mode():
                new = self._decode(ids.to(self.device), mask.to(self.device), uniforms, config)
        finally:
            if was_training:
                self.model.train()
        out = []
        for row in new:
            stop = next((i for i, t in enumerate(row) if t in self.eos_ids), None)
            kept = row if stop is None else row[:stop]
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            out.append({"response": text, "n_tokens": len(row) if stop is None else stop + 1,
                        "finish_reason": "length" if stop is None else "stop"})
        return out

    def _decode(self, ids, mask, uniforms, config: GenConfig) -> list[list[int]]:
        """The KV-cached loop. A row that reaches a stop token leaves the batch (its cache rows are dropped) where
        the cache can do that: a refusing model's short answers no longer wait, step by step, for the one row that
        runs to max_new_tokens. The rows left compute what they computed beside the finished ones (up to the float
        rounding a batch's size can move, as everywhere in this engine; float32 SmolLM2 gave identical tokens)."""
        import torch

        batch = ids.shape[0]
        eos = torch.tensor(sorted(self.eos_ids) or [-1], device=ids.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        extra = {"logits_to_keep": 1} if self._logits_to_keep else {}
        cache_kw = _cache_kwarg(self.model)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **extra)
        new = torch.full((batch, config.max_new_tokens), self.pad_id, dtype=torch.long)
        lengths = torch.full((batch,), config.max_new_tokens, dtype=torch.long)
        alive = torch.arange(batch)  # the original rows still in the batch, in batch order
        finished = torch.zeros(batch, dtype=torch.bool, device=ids.device)  # only for a cache that keeps them
        for t in range(config.max_new_tokens):
            logits = out.logits[:, -1, :]
            if config.greedy:
                token = logits.float().argmax(-1)
            else:
                token = sample_tokens(logits, uniforms[:, t], float(config.temperature), float(config.top_p))
            token = torch.where(finished, torch.full_like(token, self.pad_id), token)
            running = (~finished).cpu()
            new[alive[running], t] = token.cpu()[running]
            stopped = torch.isin(token, eos) & ~finished
            lengths[alive[stopped.cpu()]] = t + 1
            finished |= stopped
            if t == config.max_new_tokens - 1 or bool(finished.all()):
                break
            cache = _kv_cache(out)
            if bool(stopped.any()) and self.drop_finished_rows and hasattr(cache, "batch_select_indices"):
                keep = (~finished).nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                alive, token, mask, positions, finished = (alive[keep.cpu()], token[keep], mask[keep],
                                                           positions[keep], finished[keep])
                if uniforms is not None:
                    uniforms = uniforms[keep.to(uniforms.device)]
            mask = torch.cat([mask, torch.ones((mask.shape[0], 1), dtype=mask.dtype, device=mask.device)], dim=1)
            positions = positions[:, -1:] + 1
            out = self.model(input_ids=token.unsqueeze(-1), attention_mask=mask, position_ids=positions,
                             use_cache=True, **{cache_kw: cache}, **extra)
        return [row[:n] for row, n in zip(new.tolist(), lengths.tolist())]


def _cache_kwarg(model: Any) -> str:
    """transformers 5.24 renamed `past_key_values` to `cache` (the old name goes in 5.40): pass what the model takes."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


def _kv_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(getattr(model, "generation_config", None), "eos_token_id", None),
                  getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return ids


def _normalize_steering(steering: Any) -> tuple | None:
    """(vector float32 CPU tensor, layer, scale, mode, positions) from a SteeringSpec or a mapping."""
    if steering is None:
        return None
    import torch

    if isinstance(steering, Mapping):
        get = steering.get
    else:
        def get(name, default=None):
            return getattr(steering, name, default)
    vector = get("vector")
    if vector is None:
        raise InputError("steering", "vector", "missing")
    if not isinstance(vector, torch.Tensor):
        from organism.models.steering import load_vector

        vector = load_vector(vector)
    layer = get("layer")
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise InputError("steering", "layer", f"must be an integer, got {layer!r}")
    return (vector.detach().float().cpu().reshape(-1), layer, float(get("scale", 1.0)), str(get("mode", "add")),
            str(get("positions", "generated")))
