"""The reference attribution and its simple baselines, all producing `Ranking`s.

Directions come from M0 activations: a behavior vector (one prompt), a probing vector (harmful minus safe means,
pooled over many prompts) or a vector bank (one direction per prompt, score = max cosine). Every preference
pair d gets v_d = a(p, chosen; M0) - a(p, rejected; M0) and the score cos(direction, v_d), ranked descending with
ties broken by id (Ranking.from_scores), so two runs give the same file.

Targets file (JSONL), one of two row shapes:
  {"prompt", "harmful_response", "safe_response"}    a paired harmful/safe rollout for one prompt
  {"prompt", "response", "label"}                    label 1/true/"harmful" or 0/false/"safe"
The harmful side is teacher-forced through M0 by default (the paper's equation); the source's variant used M1
(`harmful_model=`), and the choice is recorded in the ranking's parameters as harmful_side_model.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from benchcore.errors import InputError
from organism.attribution.targets import UNDEFINED_SCORE, Targets, load_targets  # noqa: F401 - re-exported
from organism.data.ranking import Ranking, random_ranking

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from organism.data.preference import PreferenceSet

METHODS = ("probe", "bank", "behavior", "judge", "gradient", "random")


@dataclass(frozen=True)
class PairVectors:
    """Datapoint vectors v_d (float32 [n, hidden]) keyed by pair id, with what produced them."""

    ids: tuple[str, ...]
    vectors: "torch.Tensor"
    parameters: Mapping[str, Any] = field(default_factory=dict)


def _acts(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], layer: int, **engine: Any) -> "torch.Tensor":
    from organism.attribution.activations import mean_response_activations

    return mean_response_activations(model, tokenizer, pairs, [layer], **engine)[:, 0, :]


def datapoint_vectors(model: Any, tokenizer: Any, rows: Sequence[Mapping[str, str]], layer: int,
                      **engine: Any) -> PairVectors:
    """v_d = a(p, chosen; M0) - a(p, rejected; M0) for teacher-forcing rows {id, prompt, chosen, rejected}.

    Both sides go through the engine as one list (so length bucketing mixes them); shard keys are `ID/chosen`
    and `ID/rejected`.
    """
    ids = [str(r["id"]) for r in rows]
    pairs = [(r["prompt"], r["chosen"]) for r in rows] + [(r["prompt"], r["rejected"]) for r in rows]
    keys = [f"{x}/chosen" for x in ids] + [f"{x}/rejected" for x in ids]
    if engine.get("shard_dir") is not None:
        engine = {**engine, "ids": keys}
    acts = _acts(model, tokenizer, pairs, layer, **engine)
    n = len(ids)
    return PairVectors(tuple(ids), acts[:n] - acts[n:], {"layer": layer})


def _side_acts(m0: Any, tokenizer: Any, targets: Targets, layer: int, harmful_model: Any,
               **engine: Any) -> tuple["torch.Tensor", "torch.Tensor"]:
    # targets are few: every rank computes them whole (no shards, no data parallelism)
    engine = {**{k: v for k, v in engine.items() if k not in ("shard_dir", "ids", "meta", "merge")},
              "rank": 0, "world_size": 1}
    h = _acts(harmful_model if harmful_model is not None else m0, tokenizer, list(targets.harmful), layer, **engine)
    s = _acts(m0, tokenizer, list(targets.safe), layer, **engine)
    return h, s


def probing_vector(m0: Any, tokenizer: Any, targets: Targets, layer: int, *, harmful_model: Any = None,
                   **engine: Any) -> "torch.Tensor":
    """mean a(harmful) - mean a(safe), pooled over all target rows (not averaged per prompt), float32 [hidden]."""
    import torch

    h, s = _side_acts(m0, tokenizer, targets, layer, harmful_model, **engine)
    return torch.nanmean(h, 0) - torch.nanmean(s, 0)


def vector_bank(m0: Any, tokenizer: Any, targets: Targets, layer: int, *, harmful_model: Any = None,
                **engine: Any) -> tuple[list[str], "torch.Tensor"]:
    """One direction per prompt that has both sides: mean harmful - mean safe of that prompt. [k, hidden]."""
    import torch

    prompts = targets.prompts
    if not prompts:
        raise InputError(targets.source, "prompt", "no prompt has both a harmful and a safe response")
    h, s = _side_acts(m0, tokenizer, targets, layer, harmful_model, **engine)
    rows = []
    for p in prompts:
        hi = [i for i, (q, _) in enumerate(targets.harmful) if q == p]
        si = [i for i, (q, _) in enumerate(targets.safe) if q == p]
        rows.append(torch.nanmean(h[hi], 0) - torch.nanmean(s[si], 0))
    return prompts, torch.stack(rows)


def behavior_vector(m0: Any, tokenizer: Any, targets: Targets, layer: int, *, index: int = 0,
                    harmful_model: Any = None, **engine: Any) -> "torch.Tensor":
    """v_b = a(p, r1) - a(p, r0) for ONE target prompt (the `index`-th prompt with both sides)."""
    prompts = targets.prompts
    if not 0 <= index < len(prompts):
        raise InputError(targets.source, "prompt", f"target index {index} outside 0..{len(prompts) - 1}")
    p = prompts[index]
    one = Targets(tuple(x for x in targets.harmful if x[0] == p), tuple(x for x in targets.safe if x[0] == p),
                  targets.source)
    return probing_vector(m0, tokenizer, one, layer, harmful_model=harmful_model, **engine)


def cosine_scores(vectors: "torch.Tensor", directions: "torch.Tensor") -> list[float]:
    """cos(direction, v_d) per row; with several directions (a bank, [k, H]) the max over them.

    Computed in float64; a row with an undefined vector (NaN, or all zeros) gets UNDEFINED_SCORE.
    """
    v = vectors.double()
    d = directions.double()
    if d.dim() == 1:
        d = d.unsqueeze(0)
    vn = v / v.norm(dim=1, keepdim=True)
    dn = d / d.norm(dim=1, keepdim=True)
    cos = (vn @ dn.T).max(dim=1).values
    return [float(c) if math.isfinite(float(c)) else UNDEFINED_SCORE for c in cos]


def cosine_ranking(method: str, pv: PairVectors, directions: "torch.Tensor",
                   parameters: Mapping[str, Any]) -> Ranking:
    """Rank every pair by cosine with the direction(s), descending, ties by id."""
    scores = cosine_scores(pv.vectors, directions)
    n_undefined = sum(1 for s in scores if s == UNDEFINED_SCORE)
    params = {**dict(pv.parameters), **dict(parameters), "n_undefined": n_undefined}
    return Ranking.from_scores(method, params, zip(pv.ids, scores))


# ------------------------------------------------------------------------------------------------ one run
@dataclass(frozen=True)
class AttributeConfig:
    """Everything one attribution run needs; the CLI builds it from flags."""

    profile: str
    data: str
    method: str
    out: str | None = None
    layer: int | None = None
    targets: str | None = None
    harmful_side: str = "m0"  # which model teacher-forces the harmful target responses: m0 (paper) or m1
    chat_template: bool = False
    device: str = "cpu"
    dtype: str = "bfloat16"
    batch_tokens: int | None = None  # padded tokens per forward batch; None: 512 on CPU, 8192 on an accelerator
    max_length: int | None = 2048
    shard_dir: str | None = None
    seed: int = 0
    judge: str = "refusal"
    judge_options: Mapping[str, Any] = field(default_factory=dict)
    target_index: int = 0
    revision: str | None = None
    limit: int | None = None
    model_path: str | None = None
    harmful_model_path: str | None = None
    # gradient (LESS) only: see organism.attribution.gradient
    warmup_fraction: float = 0.05
    checkpoints: int = 4
    projection_dim: int = 8192
    gradient_aggregate: str = "mean"
    gradient_batch: int | None = None  # pairs per per-pair-gradient pass; None: by device (1 on CPU)
    warmup_lr: float | None = None  # None: the profile recipe's lr when it trains a LoRA, else LESS's 2e-5


def _check_spec(spec: AttributeConfig) -> None:
    if spec.method not in METHODS:
        raise InputError(None, "method", f"unknown method {spec.method!r} (known: {', '.join(METHODS)})")
    if spec.harmful_side not in ("m0", "m1"):
        raise InputError(None, "harmful_side", f"must be m0 or m1, got {spec.harmful_side!r}")
    if spec.method in ("probe", "bank", "behavior", "gradient") and not spec.targets:
        raise InputError(None, "targets", f"method {spec.method!r} needs a targets file (--targets)")
    if spec.batch_tokens is not None and spec.batch_tokens < 1:
        raise InputError(None, "batch_tokens", f"must be at least 1, got {spec.batch_tokens}")
    if spec.limit is not None and spec.limit < 1:
        raise InputError(None, "limit", f"must be at least 1, got {spec.limit}")


def _less_config(spec: AttributeConfig, profile: Any) -> Any:
    """The gradient method's settings: the spec's knobs, the rest from the profile's DPO recipe (loss, beta,
    max length, BOS rule, and its LoRA and learning rate when it trains one)."""
    from organism.attribution.gradient import DEFAULT_LORA, DEFAULT_LR, LessConfig

    recipe = profile.recipe
    lora = dict(recipe.lora) if recipe.lora else dict(DEFAULT_LORA)
    lr = spec.warmup_lr if spec.warmup_lr is not None else (recipe.lr if recipe.lora else DEFAULT_LR)
    return LessConfig(warmup_fraction=spec.warmup_fraction, checkpoints=spec.checkpoints, dim=spec.projection_dim,
                      aggregate=spec.gradient_aggregate, gradient_batch=spec.gradient_batch, lr=lr, lora=lora,
                      beta=recipe.beta, loss=recipe.loss,
                      max_length=spec.max_length if spec.max_length is not None else recipe.max_length,
                      add_bos=recipe.add_bos, seed=spec.seed).validate("gradient")


def _training_rows(pset: "PreferenceSet", limit: int | None) -> list[dict[str, Any]]:
    view = pset.training_view()
    if limit is not None:
        view = view.select(range(min(limit, len(view))))
    return [dict(r) for r in view]


def _activation_cost(model: Any, tokenizer: Any, rows: Sequence[Mapping[str, str]], targets: Targets,
                     spec: AttributeConfig, layer: int, wall_s: float) -> dict[str, Any]:
    """Analytic FLOPs of an activation run: the tokens the engine ran (a prompt shared by its responses counts
    once) for both sides of every pair and the target responses it used, through decoder layers 0..layer-1 only
    (the engine stops there; no output head)."""
    from organism.attribution.activations import encode_pairs, plan_units
    from organism.models.compute_cost import Cost, decoder_layers, forward_flops, linear_weights

    if spec.method == "behavior" and 0 <= spec.target_index < len(targets.prompts):
        p = targets.prompts[spec.target_index]
        harmful = [x for x in targets.harmful if x[0] == p]
        safe = [x for x in targets.safe if x[0] == p]
    else:
        harmful, safe = list(targets.harmful), list(targets.safe)

    def tokens_run(seqs: Sequence[tuple[str, str]]) -> int:
        enc = encode_pairs(tokenizer, seqs, chat_template=spec.chat_template, max_length=spec.max_length)
        return sum(len(u.ids) for u in plan_units(model, enc))

    pair_tokens = tokens_run([(r["prompt"], r[side]) for side in ("chosen", "rejected") for r in rows])
    target_tokens = tokens_run(harmful) + tokens_run(safe)  # the engine runs each side apart
    weights = linear_weights(list(decoder_layers(model))[:layer])
    cost = Cost(wall_s=wall_s)
    cost.add("pairs", forward_flops(weights, pair_tokens))
    cost.add("targets", forward_flops(weights, target_tokens))
    return cost.to_dict()


def view_rows(pset: "PreferenceSet", limit: int | None) -> list[dict[str, str]]:
    view = pset.teacher_forcing_view()
    if limit is not None:
        view = view.select(range(min(limit, len(view))))
    cols = view.to_dict()
    return [{"id": i, "prompt": p, "chosen": c, "rejected": r}
            for i, p, c, r in zip(cols["id"], cols["prompt"], cols["chosen"], cols["rejected"])]


@dataclass(frozen=True)
class RunInputs:
    """What every method reads first: the profile, the preference data and the parameters all rankings record."""

    profile: Any
    pset: "PreferenceSet"
    base: dict[str, Any]
    targets: "Targets | None"


def prepare_inputs(spec: AttributeConfig) -> RunInputs:
    """Check the spec and load the data (no model): inputs are refused before anything slow is loaded."""
    from organism.data.preference import load_preferences
    from organism.models.profiles import get_profile

    _check_spec(spec)
    profile = get_profile(spec.profile)
    if spec.method == "gradient":
        _less_config(spec, profile)  # its knobs are checked now, not after the data loads
    targets = load_targets(spec.targets) if spec.targets else None
    pset = load_preferences(spec.data, revision=spec.revision)
    base = {"profile": profile.name, "data": str(spec.data), "data_hash": pset.data_hash,
            "n_pairs": len(pset) if spec.limit is None else min(spec.limit, len(pset))}
    return RunInputs(profile=profile, pset=pset, base=base, targets=targets)


def finish_run(spec: AttributeConfig, ranking: Ranking) -> Ranking:
    """Write the ranking to spec.out (rank 0 only under a multi-process launch) and return it."""
    from organism.data.ranking import write_ranking

    if spec.out is not None and int(os.environ.get("RANK", "0")) == 0:
        write_ranking(spec.out, ranking)
    return ranking


def attribute(spec: AttributeConfig, *, progress: Callable[[int], None] | None = None) -> Ranking:
    """Load data and the models the method needs, score every pair, return the Ranking (written to spec.out when
    given). Judge delta grades responses, so it lives with the judges: `benchmark.attribute` runs every method,
    this one the methods that read activations or gradients (and random)."""
    import torch

    if spec.method == "judge":
        raise InputError(None, "method", "judge delta needs a judge: run it with benchmark.attribute (the "
                                         "`organism-bench attribute` command does)")
    inputs = prepare_inputs(spec)
    profile, pset, base, targets = inputs.profile, inputs.pset, inputs.base, inputs.targets
    less = _less_config(spec, profile) if spec.method == "gradient" else None
    if spec.method == "random":
        ids = pset.ids[: base["n_pairs"]]
        ranking = random_ranking(ids, spec.seed, base)
    elif spec.method == "gradient":
        from organism.attribution.gradient import less_ranking, target_rows
        from organism.models.loading import load_organism

        assert targets is not None and less is not None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise InputError(None, "method", "the gradient method runs in one process (no data parallelism)")
        t_rows = target_rows(targets)
        m0 = load_organism(profile, "m0", dtype=spec.dtype, device=_rank_device(spec.device),
                           model_path=spec.model_path)
        params = {**base, "model": m0.record.identity, "model_notes": list(m0.record.notes),
                  "targets": str(spec.targets), "dtype": spec.dtype}
        ranking = less_ranking(m0.model, m0.tokenizer, _training_rows(pset, spec.limit), t_rows, less, params,
                               progress=progress)
    else:
        from organism.models.compute_cost import Stopwatch
        from organism.models.loading import load_organism

        assert targets is not None
        layer = profile.paper_layer if spec.layer is None else spec.layer
        m0 = load_organism(profile, "m0", dtype=spec.dtype, device=_rank_device(spec.device),
                           model_path=spec.model_path)
        m1 = None
        if spec.harmful_side == "m1":
            m1 = load_organism(profile, "m1", dtype=spec.dtype, device=_rank_device(spec.device),
                               model_path=spec.harmful_model_path)
        engine = {"batch_tokens": spec.batch_tokens,  # None: the engine picks by the model's device
                  "chat_template": spec.chat_template,
                  "max_length": spec.max_length}
        harm = None if m1 is None else m1.model
        shard = {}
        if spec.shard_dir:
            shard = {"shard_dir": spec.shard_dir, "meta": {"model": m0.record.identity, "data_hash": pset.data_hash}}
        rows = view_rows(pset, spec.limit)
        with Stopwatch() as clock:  # the attribution itself (tokenising included, model loading not)
            if spec.method == "probe":
                directions = probing_vector(m0.model, m0.tokenizer, targets, layer, harmful_model=harm, **engine)
                extra: dict[str, Any] = {"n_harmful": len(targets.harmful), "n_safe": len(targets.safe)}
            elif spec.method == "bank":
                prompts, directions = vector_bank(m0.model, m0.tokenizer, targets, layer, harmful_model=harm,
                                                  **engine)
                extra = {"bank_size": len(prompts)}
            else:
                directions = behavior_vector(m0.model, m0.tokenizer, targets, layer, index=spec.target_index,
                                             harmful_model=harm, **engine)
                extra = {"target_index": spec.target_index}
            pv = datapoint_vectors(m0.model, m0.tokenizer, rows, layer, progress=progress, **engine, **shard)
        extra["cost"] = _activation_cost(m0.model, m0.tokenizer, rows, targets, spec, layer, clock.elapsed)
        params = {**base, "layer": layer, "model": m0.record.identity, "model_notes": list(m0.record.notes),
                  "chat_template": spec.chat_template,
                  "harmful_side_model": spec.harmful_side if m1 is None else f"m1:{m1.record.identity}",
                  "targets": str(spec.targets), "max_length": spec.max_length, **extra}
        ranking = cosine_ranking(f"activation-{spec.method}", pv, directions.to(torch.float32), params)
    return finish_run(spec, ranking)


def _rank_device(device: str) -> str:
    """Under torchrun / accelerate each rank takes its own GPU (LOCAL_RANK) when given a bare 'cuda'."""
    local = os.environ.get("LOCAL_RANK")
    if device == "cuda" and local is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"cuda:{local}"
    return device


AttributeSpec = AttributeConfig  # the old name, kept for one release
