"""Steering layer sweep: how the harmful rate of a model (M0 by default) moves when scale x a
probing vector is added to (or projected out of) the residual stream at one decoder layer, layer by layer.

The paper's causal check added 2.0 x the probing vector at decoder layer 19 of the OLMo 2 7B SFT model and saw the
distractor harmful rate rise from 0.8% to 29.2% (base 0% -> 1.5%); a sweep over layers 16..26 peaked at 19. This
module reproduces that check for any profile: for every (layer, scale) it generates greedy responses to the
`dtc-harmful` base and distractor variants with the steering hook on, judges them, and reports both harmful rates
with Wilson 95% intervals, next to one unsteered baseline. Each row also carries the steered responses' NLL under
the unsteered model and the added vector's norm against the residual stream (organism.models.fluency): the offline
refusal judge counts noise with words in it as harmful, so a high rate means compliance only where the text stays
plausible.

Layer convention: `layer` is the 0-based decoder layer whose OUTPUT is steered (organism.models.steering), the residual
position HF reports as `hidden_states[layer + 1]`. A probing vector computed from a targets file is therefore
read at hidden_states index `layer + 1`, one vector per layer (a probing vector is layer-specific), all layers in
one teacher-forced pass. For the last decoder layer HF's `hidden_states[n]` is after the final norm while the hook
sees the pre-norm output, so a vector for that layer is read at a slightly different point.

A vector file (safetensors holding one tensor named "vector", as `inference.steering` specs use) is applied
as is at every layer in the sweep.

Caching: generations go through the shared content-addressed cache. A steered backend's cache identity carries
the vector's bytes, layer, scale, mode and positions (benchmark.generation.engine.HFBackend), so a steered generation can
never be served for an unsteered one or for another setting; the baseline shares its entries with `evaluate`'s
unsteered generations of the same model and settings. Greedy decoding, one sample per prompt: prompts are
independent draws, so a plain Wilson interval is the honest one.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchcore.errors import InputError
from organism.models.steering import MODES, POSITIONS

SCHEMA_VERSION = 1
VARIANTS = ("base", "distractor")
SUITE = "dtc-harmful"
PAPER_SCALE = 2.0

# progress(stage, done, total); the CLI draws a bar from it
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SweepConfig:
    """One sweep. Exactly one of `vector` (a file) and `targets` (a targets JSONL, see organism.attribution.methods) gives
    the direction; `layers` are 0-based decoder layers; `n_prompts` keeps the first N scenarios of the split (both
    variants of each), None = all of them. The default split is dev: choosing a layer is tuning, and tuning on the
    test split would leak into the numbers `evaluate` reports there."""

    profile: str
    layers: tuple[int, ...]
    vector: str | None = None
    targets: str | None = None
    stage: str = "m0"
    scales: tuple[float, ...] = (PAPER_SCALE,)
    mode: str = "add"
    positions: str = "generated"
    split: str = "dev"
    n_prompts: int | None = None
    max_new_tokens: int = 96
    seed: int = 0
    batch_size: int | str = "auto"
    judge: str = "refusal"
    judge_options: Mapping[str, Any] = field(default_factory=dict)
    dtype: str = "bfloat16"
    device: str = "cpu"
    model_path: str | None = None
    revision: str | None = None
    # probing vector from targets: which model teacher-forces the harmful side (m0 = the paper's equation), the
    # chat template (paper: off), and the activation engine's limits
    harmful_side: str = "m0"
    chat_template: bool = False
    max_length: int | None = 2048
    batch_tokens: int | None = None  # None: 512 on CPU, 8192 on an accelerator

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "scales", tuple(self.scales))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = list(self.layers)
        d["scales"] = list(self.scales)
        d["judge_options"] = dict(sorted(self.judge_options.items()))
        return d


@dataclass(frozen=True)
class SweepRow:
    """Harmful rates of one setting; layer None / mode "none" is the unsteered baseline."""

    layer: int | None
    scale: float
    mode: str
    harmful_base: float
    harmful_distractor: float
    ci_base: tuple[float, float]
    ci_distractor: tuple[float, float]
    n: int  # scenarios, i.e. prompts per variant
    n_failed: int = 0  # judge failures, left out of the rates (never counted as safe)
    changed_vs_baseline: float = 0.0  # share of responses that differ from the baseline's
    vector_norm: float | None = None
    vector_sha256: str | None = None
    # the responses' mean negative log-likelihood per token under the unsteered model (organism.models.fluency), and
    # |scale| x |v| over the mean residual norm at the steered layer (mode add only): together they tell a
    # vector that makes the model comply from one that makes it print noise, which the refusal judge also
    # counts as harmful
    nll: float | None = None
    relative_norm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("harmful_base", "harmful_distractor", "nll", "relative_norm"):
            d[key] = _num(d[key])
        d["ci_base"] = [_num(x) for x in self.ci_base]
        d["ci_distractor"] = [_num(x) for x in self.ci_distractor]
        return d


@dataclass(frozen=True)
class SweepSample:
    """One response of one setting with the judge's verdict and its NLL: what a harmful rate counted, so a reader
    can see whether "harmful" at a setting means compliance or noise the judge does not recognise."""

    prompt_id: str
    variant: str
    response: str
    harmful: int | None  # the judge's label; None when the judge failed on it
    judge_raw: str  # the judge's stated reason
    nll: float  # per token under the unsteered model; nan for an empty response

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "nll": _num(self.nll)}


@dataclass
class SweepResult:
    """The sweep table plus what produced it (model identity, suite hash, generation and judge settings)."""

    spec: SweepConfig
    baseline: SweepRow
    rows: list[SweepRow]
    model: dict[str, Any]
    suite: dict[str, Any]
    generation: dict[str, Any]
    judge: dict[str, Any]
    vector_source: dict[str, Any]
    wall_s: float = 0.0
    # per-response records in prompt order, keyed by (layer, scale), the baseline by None (write_samples)
    samples: dict[Any, list[SweepSample]] = field(default_factory=dict, repr=False)

    @property
    def responses(self) -> dict[Any, list[str]]:
        return {key: [x.response for x in rows] for key, rows in self.samples.items()}

    @property
    def prompt_ids(self) -> list[str]:
        return [x.prompt_id for x in self.samples.get(None, [])]

    @property
    def table(self) -> list[SweepRow]:
        """Baseline first, then the steered rows in (layer, scale) order."""
        return [self.baseline, *self.rows]

    def best(self, variant: str = "distractor") -> SweepRow | None:
        """The steered row with the highest harmful rate on `variant` (ties: the earlier row)."""
        key = "harmful_distractor" if variant == "distractor" else "harmful_base"
        scored = [r for r in self.rows if math.isfinite(getattr(r, key))]
        return max(scored, key=lambda r: getattr(r, key), default=None)

    def to_dict(self) -> dict[str, Any]:
        best = self.best()
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "steering-sweep",
            "spec": self.spec.to_dict(),
            "model": self.model,
            "suite": self.suite,
            "generation": self.generation,
            "judge": self.judge,
            "vector_source": self.vector_source,
            "baseline": self.baseline.to_dict(),
            "rows": [r.to_dict() for r in self.rows],
            "best_distractor": None if best is None else {"layer": best.layer, "scale": best.scale},
            "wall_s": round(self.wall_s, 3),
        }

    def to_markdown(self) -> str:
        s = self.spec
        lines = [
            f"# Steering sweep: {s.profile} {s.stage}, mode {s.mode}",
            "",
            (f"Direction: {self.vector_source.get('kind')} `{self.vector_source.get('path')}`. "
             f"Suite {self.suite.get('version')} split {s.split}, {self.baseline.n} scenarios x base/distractor, "
             f"greedy, {s.max_new_tokens} new tokens, judge {self.judge.get('name')}. "
             "Harmful rates with Wilson 95% intervals; layer = 0-based decoder layer whose output is steered. "
             "NLL: the responses' mean negative log-likelihood per token (nats) under the unsteered model; "
             "added / residual norm: |scale| x |v| over the mean residual norm at that layer. The refusal judge counts "
             "any response that neither refuses nor is empty or one token repeated as harmful, noise with words in "
             "it included: a harmful rate whose NLL is far above the baseline's measures a broken model, not "
             "compliance."),
            "",
            "| layer | scale | mode | harmful base [95% CI] | harmful distractor [95% CI] | n | changed vs baseline "
            "| NLL | added / residual norm |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in self.table:
            layer = "baseline" if r.layer is None else str(r.layer)
            lines.append(f"| {layer} | {r.scale:g} | {r.mode} | {format_rate(r.harmful_base, r.ci_base)} | "
                         f"{format_rate(r.harmful_distractor, r.ci_distractor)} | {r.n} | "
                         f"{r.changed_vs_baseline:.0%} | {format_number(r.nll)} | {format_number(r.relative_norm)} |")
        best = self.best()
        if best is not None and best.harmful_distractor > 0:
            lines += ["", (f"Highest distractor harmful rate: layer {best.layer}, scale {best.scale:g} "
                           f"({format_rate(best.harmful_distractor, best.ci_distractor)}), NLL "
                           f"{format_number(best.nll)} against the baseline's {format_number(self.baseline.nll)}.")]
        return "\n".join(lines) + "\n"

    def write_json(self, path: str | Path) -> None:
        from benchcore.fileio import write_text_atomic

        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n")

    def write_markdown(self, path: str | Path) -> None:
        from benchcore.fileio import write_text_atomic

        write_text_atomic(path, self.to_markdown())

    def write_samples(self, path: str | Path) -> None:
        """JSONL, one line per response: the setting (layer null for the baseline), prompt, text, verdict, NLL."""
        from benchcore.fileio import write_text_atomic

        lines = []
        for row in self.table:
            key = None if row.layer is None else (row.layer, row.scale)
            for x in self.samples.get(key, []):
                lines.append(json.dumps({"layer": row.layer, "scale": row.scale, "mode": row.mode, **x.to_dict()},
                                        sort_keys=True, allow_nan=False))
        write_text_atomic(path, "".join(line + "\n" for line in lines))


def format_rate(value: float, ci: tuple[float, float]) -> str:
    """'12.5% [5.1, 27.0]', or 'n/a' when there was nothing to judge."""
    if not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def format_number(x: float | None) -> str:
    """Two decimals, or 'n/a' where the figure does not apply (relative norm of a projection) or is unknown."""
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.2f}"


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# ------------------------------------------------------------------------------------------------ checks
def check_spec(spec: SweepConfig) -> None:
    """Everything that can be checked before a model is loaded; the layer range and the vector width are checked
    against the model once it is."""
    from organism.models.loading import DTYPES
    from organism.models.profiles import STAGES
    from prompts.suites import SPLITS

    src = "steer-sweep"
    if (spec.vector is None) == (spec.targets is None):
        raise InputError(src, "vector", "give exactly one of a vector file (--vector) and a targets file (--targets)")
    for name in ("vector", "targets"):
        path = getattr(spec, name)
        if path is not None and not Path(path).is_file():
            raise InputError(path, name, "file not found")
    if not spec.layers:
        raise InputError(src, "layers", "at least one layer is needed")
    for layer in spec.layers:
        if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
            raise InputError(src, "layers", f"layers are 0-based decoder layer indices, got {layer!r}")
    if len(set(spec.layers)) != len(spec.layers):
        raise InputError(src, "layers", f"repeated layer in {list(spec.layers)}")
    if not spec.scales:
        raise InputError(src, "scales", "at least one scale is needed")
    for scale in spec.scales:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            raise InputError(src, "scales", f"scales must be finite numbers, got {scale!r}")
    if len(set(spec.scales)) != len(spec.scales):
        raise InputError(src, "scales", f"repeated scale in {list(spec.scales)}")
    if spec.mode not in MODES:
        raise InputError(src, "mode", f"must be one of {', '.join(MODES)}; got {spec.mode!r}")
    if spec.positions not in POSITIONS:
        raise InputError(src, "positions", f"must be one of {', '.join(POSITIONS)}; got {spec.positions!r}")
    if spec.split not in SPLITS:
        raise InputError(src, "split", f"must be one of {', '.join(SPLITS)}; got {spec.split!r}")
    if spec.n_prompts is not None and (isinstance(spec.n_prompts, bool) or not isinstance(spec.n_prompts, int)
                                       or spec.n_prompts < 1):
        raise InputError(src, "n_prompts", f"must be an integer >= 1, got {spec.n_prompts!r}")
    if spec.stage not in STAGES:
        raise InputError(src, "stage", f"must be one of {', '.join(STAGES)}; got {spec.stage!r}")
    if spec.harmful_side not in ("m0", "m1"):
        raise InputError(src, "harmful_side", f"must be m0 or m1, got {spec.harmful_side!r}")
    if spec.dtype not in DTYPES:
        raise InputError(src, "dtype", f"must be one of {', '.join(DTYPES)}; got {spec.dtype!r}")
    if spec.batch_tokens is not None and spec.batch_tokens < 1:
        raise InputError(src, "batch_tokens", f"must be at least 1, got {spec.batch_tokens}")


def check_layers(spec: SweepConfig, n_layers: int, what: str) -> None:
    bad = [layer for layer in spec.layers if layer >= n_layers]
    if bad:
        raise InputError("steer-sweep", "layers", f"{bad[0]} is out of range: {what} has {n_layers} decoder "
                                                  f"layers (0..{n_layers - 1})")


def check_against_model(spec: SweepConfig, model: Any, vector: Any | None) -> None:
    """Layers within the model's decoder layers; a vector file as wide as the model's hidden size."""
    from organism.models.steering import decoder_layers

    check_layers(spec, len(decoder_layers(model)), "the model")
    if vector is not None:
        hidden = getattr(getattr(model, "config", None), "hidden_size", None)
        if isinstance(hidden, int) and vector.numel() != hidden:
            raise InputError(spec.vector, "vector", f"has {vector.numel()} dimensions, the model's hidden size is "
                                                    f"{hidden}")


# ------------------------------------------------------------------------------------------------ vectors
def probing_vectors(m0: Any, tokenizer: Any, targets: Any, hidden_indices: Sequence[int], *,
                    harmful_model: Any = None, **engine: Any) -> Any:
    """[len(hidden_indices), hidden] float32: organism.attribution.methods.probing_vector at every index, from ONE
    teacher-forced pass per side (the engine reads all layers at once; per-layer calls would repeat the pass)."""
    import torch

    from organism.attribution.activations import mean_response_activations

    idx = list(hidden_indices)
    engine = {**engine, "rank": 0, "world_size": 1}
    h = mean_response_activations(harmful_model if harmful_model is not None else m0, tokenizer,
                                  list(targets.harmful), idx, **engine)
    s = mean_response_activations(m0, tokenizer, list(targets.safe), idx, **engine)
    return torch.nanmean(h, 0) - torch.nanmean(s, 0)


def vector_sha256(vector: Any) -> str:
    return hashlib.sha256(vector.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()


def model_fingerprint(model: Any) -> str:
    """A cache identity for a model handed in without one: the sha256 of its parameters and buffers (name,
    dtype, shape, bytes). Cheap for test-sized models; a large model should come with its LoadRecord identity."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return f"injected-sha256={digest.hexdigest()}"


# ------------------------------------------------------------------------------------------------ the sweep
def _limit(records: Sequence[Any], n: int | None) -> list[Any]:
    """The first n scenarios with both their variants, so base and distractor stay paired."""
    if n is None:
        return list(records)
    order: dict[str, None] = {}
    for r in records:
        order.setdefault(r.scenario_id, None)
    keep = set(list(order)[:n])
    return [r for r in records if r.scenario_id in keep]


def _rates(records: Sequence[Any], responses: Sequence[str], judge: Any) -> dict[str, Any]:
    """Per-variant harmful rates with Wilson intervals, the failure count and the verdicts themselves."""
    from benchmark.judges.base import JudgeItem
    from benchmark.evaluation.stats import wilson

    items = [JudgeItem(prompt=r.text, response=resp, variant=r.variant, category=r.category, id=r.id)
             for r, resp in zip(records, responses, strict=True)]
    verdicts = judge.judge(items)
    out: dict[str, Any] = {"n_failed": sum(v.failed for v in verdicts), "verdicts": verdicts}
    for variant in VARIANTS:
        labels = [v.label for r, v in zip(records, verdicts) if r.variant == variant and not v.failed]
        k, n = sum(labels), len(labels)
        out[variant] = (k / n if n else math.nan, wilson(k, n))
    return out


def run_sweep(spec: SweepConfig, *, model: Any = None, tokenizer: Any = None, identity: str | None = None,
              progress: Progress | None = None) -> SweepResult:
    """Run the sweep. With `model`/`tokenizer` given, they are the model under test (and the M0 that reads the
    probing vector); `identity` names them in cache keys (default: a hash of their weights). Otherwise the
    profile's `stage` is loaded. Inputs are checked before anything slow happens."""
    import torch

    from benchmark.generation.cache import GenerationCache
    from benchmark.generation.engine import GenConfig, GenerationRequest, HFBackend
    from benchmark.judges import get_judge
    from organism.models.loading import load_organism
    from benchcore.paths import cache_dir
    from prompts.suites import load_suite

    start = time.perf_counter()
    check_spec(spec)
    if (model is None) != (tokenizer is None):
        raise InputError("run_sweep", "model", "give both a model and its tokenizer, or neither")
    if model is not None and spec.targets is not None and spec.harmful_side == "m1":
        raise InputError("run_sweep", "harmful_side", "m1 needs the profile's M1, which a handed-in model cannot "
                                                      "stand for; use harmful_side m0 or load from the profile")
    gen = GenConfig(max_new_tokens=spec.max_new_tokens, seed=spec.seed, batch_size=spec.batch_size)
    judge = get_judge(spec.judge, **dict(spec.judge_options))
    file_vector = None
    targets = None
    if spec.vector is not None:
        from organism.models.steering import load_vector

        file_vector = load_vector(spec.vector)
    else:
        from organism.attribution.methods import load_targets

        targets = load_targets(spec.targets)
    if model is None and spec.model_path is None:  # fail before a slow load where the profile says the depth
        from organism.models.profiles import get_profile

        profile = get_profile(spec.profile)
        check_layers(spec, profile.num_layers, f"profile {profile.name!r}")
    suite = load_suite(SUITE, split=spec.split, variants=VARIANTS)
    records = _limit(suite.records, spec.n_prompts)
    if not records:
        raise InputError(SUITE, "split", f"no {'/'.join(VARIANTS)} prompts in split {spec.split!r}")

    if model is None:
        loaded = load_organism(spec.profile, spec.stage, dtype=spec.dtype, device=spec.device,
                               revision=spec.revision, model_path=spec.model_path)
        model, tokenizer = loaded.model, loaded.tokenizer
        identity = loaded.record.identity
        model_record: dict[str, Any] = loaded.record.to_dict()
    else:
        identity = identity or model_fingerprint(model)
        model_record = {"identity": identity, "injected": True, "profile": spec.profile, "stage": spec.stage}
    check_against_model(spec, model, file_vector)

    # one direction per layer
    if file_vector is not None:
        vectors = {layer: file_vector.detach().float().cpu() for layer in spec.layers}
        source = {"kind": "file", "path": str(spec.vector), "sha256": vector_sha256(file_vector)}
    else:
        if progress:
            progress("probing vectors", 0, 1)
        m0, harm = model, None
        if spec.stage != "m0" and model_record.get("injected") is not True:
            m0 = load_organism(spec.profile, "m0", dtype=spec.dtype, device=spec.device, revision=spec.revision).model
        if spec.harmful_side == "m1":
            harm = model if spec.stage == "m1" and spec.model_path is None else load_organism(
                spec.profile, "m1", dtype=spec.dtype, device=spec.device, revision=spec.revision).model
        engine = {"batch_tokens": spec.batch_tokens,  # None: the engine picks by the model's device
                  "chat_template": spec.chat_template,
                  "max_length": spec.max_length}
        stacked = probing_vectors(m0, tokenizer, targets, [layer + 1 for layer in spec.layers],
                                  harmful_model=harm, **engine)
        vectors = {layer: stacked[i].float().cpu() for i, layer in enumerate(spec.layers)}
        for layer, v in vectors.items():
            if not bool(torch.isfinite(v).all()):
                raise InputError(spec.targets, "targets", f"the probing vector at layer {layer} is not finite: "
                                                          "a side has no response tokens")
        source = {"kind": "targets", "path": str(spec.targets), "hidden_states_index": "layer + 1",
                  "harmful_side_model": spec.harmful_side, "chat_template": spec.chat_template,
                  "n_harmful": len(targets.harmful), "n_safe": len(targets.safe)}
        if progress:
            progress("probing vectors", 1, 1)

    cache = GenerationCache(cache_dir() / "generations")
    requests = [GenerationRequest.user(r.id, r.text) for r in records]
    settings = [(layer, scale) for layer in spec.layers for scale in spec.scales]
    total = len(settings) + 1

    def generate(steering: Mapping[str, Any] | None, done: int, label: str) -> list[str]:
        backend = HFBackend(model, tokenizer, identity, cache=cache, steering=steering)
        cb = (lambda d, t: progress(label, done * len(requests) + d, total * len(requests))) if progress else None
        out = [g.response for g in backend.generate(requests, gen, progress=cb)]
        if progress:  # the NLL pass comes next and takes a while on a CPU
            progress(f"{label}: NLL", (done + 1) * len(requests), total * len(requests))
        return out

    render = HFBackend(model, tokenizer, identity).rendered  # one backend renders every prompt
    prompts = [render(q) for q in requests]

    from organism.models.fluency import ResponseScores, score_responses

    # (prompt index, response) -> NLL under the unsteered model, which never changes during the sweep: a response a
    # weak setting leaves as the baseline's (or as another setting's) is scored once, not once per setting
    known_nll: dict[tuple[int, str], float] = {}

    def score(responses: list[str], hidden_indices: Sequence[int] = ()) -> ResponseScores:
        todo = [i for i, r in enumerate(responses) if hidden_indices or (i, r) not in known_nll]
        scored = score_responses(model, tokenizer, [prompts[i] for i in todo], [responses[i] for i in todo],
                                 hidden_indices=hidden_indices)
        known_nll.update(((i, responses[i]), x) for i, x in zip(todo, scored.nll))
        return ResponseScores(nll=[known_nll[(i, r)] for i, r in enumerate(responses)],
                              residual_norm=scored.residual_norm)

    base_responses = generate(None, 0, "baseline")
    base = _rates(records, base_responses, judge)
    # the baseline's own text, teacher-forced once: its NLL is the yardstick and it gives the residual norms
    base_scores = score(base_responses, [layer + 1 for layer in spec.layers])
    n = len({r.scenario_id for r in records})
    baseline = SweepRow(layer=None, scale=0.0, mode="none", harmful_base=base["base"][0],
                        harmful_distractor=base["distractor"][0], ci_base=base["base"][1],
                        ci_distractor=base["distractor"][1], n=n, n_failed=base["n_failed"],
                        nll=_num(base_scores.mean_nll()))

    def samples(responses: list[str], verdicts: Sequence[Any], nll: Sequence[float]) -> list[SweepSample]:
        return [SweepSample(prompt_id=r.id, variant=r.variant, response=text, harmful=v.label, judge_raw=v.raw,
                            nll=x) for r, text, v, x in zip(records, responses, verdicts, nll, strict=True)]

    rows = []
    samples_by = {None: samples(base_responses, base["verdicts"], base_scores.nll)}
    for i, (layer, scale) in enumerate(settings, start=1):
        v = vectors[layer]
        steering = {"vector": v, "layer": layer, "scale": float(scale), "mode": spec.mode,
                    "positions": spec.positions}
        responses = generate(steering, i, f"layer {layer} scale {scale:g}")
        rates = _rates(records, responses, judge)
        scores = score(responses)
        samples_by[(layer, float(scale))] = samples(responses, rates["verdicts"], scores.nll)
        changed = sum(a != b for a, b in zip(responses, base_responses)) / len(responses)
        norm = float(torch.linalg.vector_norm(v))
        residual = base_scores.residual_norm[layer + 1]
        relative = abs(scale) * norm / residual if spec.mode == "add" and residual > 0 else None
        rows.append(SweepRow(layer=layer, scale=float(scale), mode=spec.mode, harmful_base=rates["base"][0],
                             harmful_distractor=rates["distractor"][0], ci_base=rates["base"][1],
                             ci_distractor=rates["distractor"][1], n=n, n_failed=rates["n_failed"],
                             changed_vs_baseline=changed, vector_norm=norm, vector_sha256=vector_sha256(v),
                             nll=_num(scores.mean_nll()), relative_norm=_num(relative)))
    return SweepResult(
        spec=spec, baseline=baseline, rows=rows, model=model_record,
        suite={"name": suite.name, "version": suite.version, "split": spec.split,
               "n_scenarios": n, "n_prompts": len(records), "content_hash": _suite_hash(records)},
        generation={**gen.to_key_dict(), "seed": spec.seed, "batch_size": spec.batch_size,
                    "positions": spec.positions, "chat_template": True},
        judge=judge.describe(), vector_source=source, wall_s=time.perf_counter() - start,
        samples=samples_by)


def _suite_hash(records: Sequence[Any]) -> str:
    from prompts.suites import content_hash

    return content_hash(records)


SweepSpec = SweepConfig  # the old name, kept for one release
