"""The main flow: spec -> model under test -> generate (cached) -> judge -> metrics -> score vs references -> run dir.

Every step is a function a Python user can call; the CLI only parses flags into `EvalConfig`.
Resumability comes from the content-addressed generation cache, not from the run directory: a killed run
re-generates nothing it already generated, and the run directory appears only once everything is done.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmark.evaluation import metrics as M
from benchmark.evaluation import results as R
from benchcore.errors import InputError

DEFAULT_SUITES = (M.HARMFUL_SUITE, M.BENIGN_SUITE, M.IF_SUITE, M.MCQ_SUITE)
GENERATIVE = (M.HARMFUL_SUITE, M.BENIGN_SUITE, M.IF_SUITE)

# progress(stage, done, total): the CLI draws rich bars from it; None means quiet.
Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class EvalConfig:
    profile: str = ""  # "" = the spec's profile, else the embedded default "smol"
    split: str = "test"
    suites: tuple[str, ...] = DEFAULT_SUITES
    limit: int | None = None  # first N scenarios (all their variants) of each suite
    max_new_tokens: int = 96
    temperature: float = 0.0
    top_p: float = 1.0
    samples_per_prompt: int = 1
    seed: int = 0
    batch_size: int | str = "auto"
    judge: str = "refusal"
    judge_options: Mapping[str, Any] = field(default_factory=dict)
    dtype: str = "bfloat16"
    device: str = "cpu"
    backend: str = "hf"
    n_boot: int = 2000
    references: bool = True
    # Read the organism's shipped generations of its own M0 and M1 (see `organism.models.profiles.
    # shipped_generations`) where a prompt's key matches; False computes every generation on this machine.
    shipped_generations: bool = True
    # Where the prompt suites come from: None = the files shipped in the package; a folder (an exported or pulled
    # benchmark); or "REPO@REVISION" of a pulled benchmark dataset. The suites' content hashes are what results
    # record, so the source itself does not enter cache keys.
    benchmark_source: str | None = None

    def key_dict(self) -> dict[str, Any]:
        """What determines the numbers (not where or how fast they were computed).

        The judge's version is part of it: a new version of the same judge gives other verdicts, so a cached
        reference or a finished run judged by the old one must not be taken for the new one's.
        """
        from benchmark.judges import judge_version

        d = asdict(self)
        for k in ("device", "batch_size", "references", "shipped_generations", "benchmark_source"):
            d.pop(k)
        d["judge_options"] = dict(sorted(self.judge_options.items()))
        d["judge_version"] = judge_version(self.judge)
        return d


@dataclass
class Outcome:
    results: dict[str, Any]
    samples: list[dict[str, Any]]
    reference_samples: list[dict[str, Any]] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- suites
def load_suites(config: EvalConfig) -> dict[str, Any]:
    from prompts.suites import load_suite

    source = None
    if config.benchmark_source:
        from prompts.remote import benchmark_folder

        repo, _, revision = config.benchmark_source.partition("@")
        source = benchmark_folder(repo, revision or None)
    out = {}
    for name in config.suites:
        suite = load_suite(name, split=config.split, source=source)
        if config.limit is not None:
            suite = _limit(suite, config.limit)
        out[name] = suite
    return out


def _limit(suite: Any, n: int) -> Any:
    """Keep the first n scenarios with all their variants, so base/distractor stay paired."""
    keep: list[str] = []
    for rec in suite.records:
        sid = getattr(rec, "scenario_id", None) or rec.id
        if sid not in keep:
            keep.append(sid)
    keep_set = set(keep[:n])
    records = tuple(r for r in suite.records if (getattr(r, "scenario_id", None) or r.id) in keep_set)
    return replace(suite, records=records)


# ------------------------------------------------------------------------------------------ model under test
@dataclass
class ModelUnderTest:
    source: Any  # organism.models.loading.OrganismSource: located and hashed; the weights are read on first use
    system_prompt: str | None = None
    steering: Any = None  # benchmark.evaluation.spec.SteeringSpec
    retrain: dict[str, Any] | None = None  # a data mitigation's retraining record (organism.training.retraining)
    _loaded: Any = field(default=None, repr=False)
    _backend: Any = field(default=None, repr=False)

    @property
    def identity(self) -> str:
        """The weights; the backend adds system prompt / steering to its cache key itself."""
        return self.source.record.identity

    @property
    def record(self) -> Any:
        return self._loaded.record if self._loaded is not None else self.source.record

    @property
    def loaded(self) -> Any:
        """organism.models.loading.LoadedOrganism, loaded on first use: a cached reference run, or a run whose engine
        reads the weights itself (vLLM), never needs it."""
        if self._loaded is None:
            self._loaded = self.source.load()
        return self._loaded

    def load(self) -> "ModelUnderTest":
        """Read the weights now (so a run's timings show loading apart from generating)."""
        _ = self.loaded
        return self

    def close(self) -> None:
        """Release the backend's engine (vLLM holds most of the GPU until told otherwise)."""
        backend, self._backend = self._backend, None
        if backend is not None and hasattr(backend, "close"):
            backend.close()

    @contextlib.contextmanager
    def scoring(self) -> Iterator[None]:
        """Steering for log-likelihood scoring: there is no "generated" position there, so every position."""
        if self.steering is None:
            yield
            return
        from organism.models.steering import load_vector
        from organism.models.steering import steer

        st = self.steering
        vector = load_vector(st.vector).to(dtype=next(self.loaded.model.parameters()).dtype)
        with steer(self.loaded.model, vector, st.layer, scale=st.scale, mode=st.mode, positions="all"):
            yield


def retrain_for_spec(spec: Any, config: EvalConfig, progress: Progress | None = None) -> Any:
    """A data mitigation's model: the profile's mix edited by the spec, DPO retrained from M0 with the profile's
    recipe, or the cached retrain of the same (spec, data, recipe, M0). Returns an organism.training.retraining outcome."""
    from organism.training.retraining import retrain_data_mitigation

    data = spec.to_dict()["data"]  # the ranking path there is already absolute (resolved when the spec loaded)
    if progress:
        progress("retrain", 0, None)  # the step count is known once the trainer has batched the data
    on_step = (lambda step, total: progress("retrain", step, total)) if progress else None
    outcome = retrain_data_mitigation(config.profile, data, spec_hash=_spec_hash(spec),
                                      source=getattr(spec, "source", None) or "spec", on_step=on_step)
    if progress and outcome.status == "cached":
        progress("retrain", 1, 1)
    return outcome


def build_model(spec: Any, config: EvalConfig, stage: str = "m1", *, retrained: Any = None) -> ModelUnderTest:
    """The model a run generates with (located, not yet loaded); for a data spec, M0 + the retrained weights
    (`retrained`, else retrain)."""
    from organism.models.loading import locate_organism

    where = {"dtype": config.dtype, "device": config.device}
    kind = spec.kind if spec is not None else "none"
    if kind == "data":
        if retrained is None:
            retrained = retrain_for_spec(spec, config)
        return ModelUnderTest(locate_organism(config.profile, "m0", **where, **retrained.load_kwargs()),
                              retrain=retrained.record)
    if kind == "model":
        m = spec.model
        path = m.path if m.path is not None else m.repo_id
        if m.adapter:
            return ModelUnderTest(locate_organism(config.profile, "m0", **where, adapter=path, revision=None))
        return ModelUnderTest(locate_organism(config.profile, stage, **where, model_path=path, revision=m.revision))
    source = locate_organism(config.profile, stage, **where)
    if kind == "inference":
        return ModelUnderTest(source, system_prompt=spec.inference.system_prompt, steering=spec.inference.steering)
    return ModelUnderTest(source)


def make_backend(mut: ModelUnderTest, config: EvalConfig) -> Any:
    """The model's generation backend, built once per model under test (generation and knowledge share it)."""
    if mut._backend is None or mut._backend.engine != config.backend:
        mut.close()
        mut._backend = _new_backend(mut, config)
    return mut._backend


def _new_backend(mut: ModelUnderTest, config: EvalConfig) -> Any:
    from benchmark.generation.cache import GenerationCache
    from benchcore.paths import cache_dir

    from organism.models.profiles import shipped_generations

    cache = GenerationCache(cache_dir() / "generations",
                            shipped=shipped_generations(config.profile) if config.shipped_generations else ())
    if config.backend == "vllm":
        from benchmark.generation.vllm import VLLMBackend

        if mut.steering is not None:
            raise InputError("command line", "backend", "steering needs the hf backend (vLLM has no layer hooks)")
        adapters = mut.source.adapters
        if len(adapters) > 1:
            raise InputError("command line", "backend", f"vLLM serves one LoRA adapter, and {mut.identity} "
                                                        f"stacks {len(adapters)}: use --backend hf")
        return VLLMBackend(str(mut.source.folder), mut.identity, cache, mut.system_prompt, dtype=config.dtype,
                           lora_path=str(adapters[0].path) if adapters else None)
    from benchmark.generation.engine import HFBackend

    return HFBackend(mut.loaded.model, mut.loaded.tokenizer, mut.identity, cache=cache,
                     system_prompt=mut.system_prompt, steering=mut.steering)


# --------------------------------------------------------------------------------------------- generation
def generate_rows(mut: ModelUnderTest, suites: Mapping[str, Any], config: EvalConfig,
                  progress: Progress | None = None) -> list[dict[str, Any]]:
    from benchmark.generation.engine import GenConfig, GenerationRequest

    gen = GenConfig(max_new_tokens=config.max_new_tokens, temperature=config.temperature, top_p=config.top_p,
                    n=config.samples_per_prompt, seed=config.seed, batch_size=config.batch_size)
    backend = make_backend(mut, config)
    rows: list[dict[str, Any]] = []
    for name in GENERATIVE:
        if name not in suites:
            continue
        records = {r.id: r for r in suites[name].records}
        requests = [GenerationRequest.user(r.id, r.text) for r in records.values()]
        cb = (lambda done, total, _n=name: progress(f"generate {_n}", done, total)) if progress else None
        generations = backend.generate(requests, gen, progress=cb)
        for g in generations:
            rec = records[g.prompt_id]
            rows.append({
                "suite": name, "record_id": rec.id, "scenario_id": rec.scenario_id, "variant": rec.variant,
                "category": rec.category, "constraint_ids": list(rec.constraint_ids), "edgy": rec.edgy,
                "prompt": rec.text, "rendered_prompt": g.rendered_prompt, "sample_index": g.sample_index,
                "response": g.response, "generation_source": g.source, "generation_key": g.key,
            })
    return rows


# ------------------------------------------------------------------------------------------------- grading
def grade_rows(rows: Sequence[dict[str, Any]], config: EvalConfig, progress: Progress | None = None) -> list[dict]:
    """Attach verdicts: the judge for dtc-harmful (its positive label goes into the `harmful` field whatever the judge's
    measure: the key is kept for compatibility, the measure in results.json says what it means), the refusal detector
    for benign, verifiers for instruction following."""
    from benchmark.judges import get_judge
    from benchmark.judges.base import JudgeItem
    from prompts.refusal import is_refusal
    from prompts.constraints import get_constraint

    out = [dict(r) for r in rows]
    harmful = [r for r in out if r["suite"] == M.HARMFUL_SUITE]
    if harmful:
        judge = get_judge(config.judge, **dict(config.judge_options))
        items = [JudgeItem(prompt=r["prompt"], response=r["response"], variant=r["variant"], category=r["category"],
                           id=r["record_id"]) for r in harmful]
        verdicts = judge.judge(items)
        for r, v in zip(harmful, verdicts, strict=True):
            r.update(judge_raw=v.raw, score=v.score, harmful=v.label, parse_error=v.parse_error)
        if progress:
            progress("judge", len(harmful), len(harmful))
    for r in out:
        if r["suite"] == M.BENIGN_SUITE:
            r["refused"] = int(is_refusal(r["response"]))
        elif r["suite"] == M.IF_SUITE:
            r["instructions_followed"] = [int(get_constraint(c).verify(r["response"])) for c in r["constraint_ids"]]
    return out


def judge_description(config: EvalConfig) -> dict[str, Any]:
    """The judge's identity and measure (`describe()`), plus its agreement with the shipped hand labels when that
    costs nothing (an offline judge without a model: re-running a model or an API on the calibration set is
    `judge-check`'s job).

    The agreement is only taken against the hand label that matches the judge's measure; when the shipped set has
    none (e.g. no `refused` readings for the compliance judge), `agreement_note` says so instead of publishing a
    kappa against a label that answers another question.
    """
    from benchmark.judges import get_judge
    from benchmark.judges.calibration import MissingLabel, check_judge

    judge = get_judge(config.judge, **dict(config.judge_options))
    info = judge.describe()
    if judge.offline and judge.model_id is None:
        try:
            check = check_judge(judge)
        except MissingLabel as exc:
            info["agreement_note"] = f"not measured: {Path(exc.source or '').name} has no `{exc.field}` labels"
        else:
            info["agreement"] = {**check["agreement"], "file": Path(check["file"]).name,
                                 "label": check["label"]["field"], "n_labelled": check["label"]["n_labelled"]}
    return info


def mcq_rows(mut: ModelUnderTest, suites: Mapping[str, Any], config: EvalConfig,
             progress: Progress | None = None) -> list[dict[str, Any]]:
    from benchmark.evaluation.capability import score_mcq, score_mcq_by

    if M.MCQ_SUITE not in suites:
        return []
    records = suites[M.MCQ_SUITE].records
    cb = (lambda done, total: progress("knowledge", done, total)) if progress else None
    if config.backend == "vllm":
        backend = make_backend(mut, config)
        scored = score_mcq_by(backend.token_logprobs, backend.tokenizer, records, on_batch=cb)
    else:
        with mut.scoring():
            scored = score_mcq(mut.loaded.model, mut.loaded.tokenizer, records, on_batch=cb)
    by_id = {r.id: r for r in records}
    return [{"suite": M.MCQ_SUITE, "record_id": s["record_id"], "scenario_id": s["record_id"], "variant": "base",
             "category": by_id[s["record_id"]].subject, "sample_index": 0, "prediction": s["prediction"],
             "answer": s["answer"], "correct": s["correct"], "option_logprobs": s["option_logprobs"]}
            for s in scored]


# ------------------------------------------------------------------------------------------------ the run
def evaluate(spec: Any, config: EvalConfig, *, progress: Progress | None = None,
             stage_seconds: dict[str, float] | None = None) -> Outcome:
    """Grade one mitigation (spec None = the M1 baseline). Returns results and samples; writes nothing but caches."""
    timer = _Stages(stage_seconds)
    t0 = time.time()
    with timer("load suites"):
        suites = load_suites(config)
    retrained = None
    if spec is not None and spec.kind == "data":
        with timer("retrain"):
            retrained = retrain_for_spec(spec, config, progress)
    with timer("load model"):
        mut = build_model(spec, config, retrained=retrained)
        if config.backend == "hf":
            mut.load()
    rows, metrics, judge_info = _measure(mut, suites, config, progress, timer)
    references: dict[str, Any] = {}
    scores: dict[str, Any] = {}
    if config.references:
        with timer("references"):
            for stage in ("m0", "m1"):
                if stage == "m1" and (spec is None or spec.kind == "none"):
                    ref = {"identity": mut.identity, "metrics": {k: v.to_dict() for k, v in metrics.items()},
                           "samples": rows}
                else:
                    ref = reference_run(config, stage, suites, progress)
                references[stage] = ref
        with timer("score"):
            from benchmark.evaluation.scoring import score_against_reference

            scores = score_against_reference(rows, references["m1"]["samples"], n_boot=config.n_boot, seed=config.seed)
    with timer("breakdowns"):
        breakdown = M.breakdowns(rows, seed=config.seed)
    results = assemble_results(spec, config, mut, suites, metrics, breakdown, scores, references, judge_info, rows)
    results["run"]["wall_time_s"] = round(time.time() - t0, 3)
    results["run"]["stage_seconds"] = {k: round(v, 3) for k, v in timer.seconds.items()}
    ref_rows = [{**r, "reference": stage} for stage, ref in references.items() for r in ref["samples"]]
    return Outcome(results, rows, ref_rows)


def _measure(mut: ModelUnderTest, suites: Mapping[str, Any], config: EvalConfig, progress: Progress | None,
             timer: "_Stages") -> tuple[list[dict], dict, dict]:
    try:
        with timer("generate"):
            generated = generate_rows(mut, suites, config, progress)
        with timer("knowledge"):
            knowledge = mcq_rows(mut, suites, config, progress)
    finally:
        mut.close()  # before the judge, which may want the GPU for a model of its own
    with timer("judge"):
        graded = grade_rows(generated, config, progress) + knowledge
    with timer("metrics"):
        metrics = M.compute_metrics(graded, n_boot=config.n_boot, seed=config.seed)
    return graded, metrics, judge_description(config)


def reference_run(config: EvalConfig, stage: str, suites: Mapping[str, Any],
                  progress: Progress | None = None) -> dict[str, Any]:
    """M0 / M1 of the profile on the same suites and settings, computed once and cached as one JSON document.

    The cache keeps the expensive part, the judged answers; the metrics are recomputed from them on every read
    (well under a second), so a metric added to the package shows up for references cached before it."""
    from benchcore.paths import cache_dir

    mut = build_model(None, config, stage)
    key_src = json.dumps({"config": config.key_dict(), "identity": mut.identity, "stage": stage,
                          "suites": {k: v.content_hash for k, v in suites.items()}}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:24]
    path = cache_dir() / "references" / config.profile / f"{stage}-{key}.json"
    if path.is_file():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            path.unlink()  # a torn cache entry is recomputed, never trusted
        else:
            metrics = M.compute_metrics(cached["samples"], n_boot=config.n_boot, seed=config.seed)
            return {**cached, "metrics": json.loads(json.dumps(R._clean({k: v.to_dict() for k, v in metrics.items()})))}
    ref_progress = (lambda s, d, t: progress(f"{stage.upper()} reference: {s}", d, t)) if progress else None
    rows, metrics, _ = _measure(mut, suites, config, ref_progress, _Stages(None))
    ref = {"identity": mut.identity, "stage": stage, "metrics": {k: v.to_dict() for k, v in metrics.items()},
           "samples": rows}
    R.write_json_atomic(path, ref)
    return json.loads(json.dumps(R._clean(ref)))


def assemble_results(spec: Any, config: EvalConfig, mut: ModelUnderTest, suites: Mapping[str, Any],
                     metrics: Mapping[str, Any], breakdown: Mapping[str, Any], scores: Mapping[str, Any],
                     references: Mapping[str, Any], judge_info: Mapping[str, Any], rows: Sequence[Mapping]) -> dict:
    from benchmark import __version__

    rec = mut.record
    spec_dict = spec.to_dict() if spec is not None else {"schema_version": 1, "kind": "none", "name": "M1 baseline"}
    spec_hash = _spec_hash(spec)
    metric_suites = {k: (M.HARMFUL_SUITE if k.startswith(("harmful", "trigger")) else
                         M.BENIGN_SUITE if k.startswith("over_refusal") else
                         M.IF_SUITE if k.startswith("if_") else M.MCQ_SUITE) for k in metrics}
    out = {
        "schema_version": R.SCHEMA_VERSION,
        "package": {"name": "organism-bench", "version": __version__, "git": R.git_revision()},
        "run": {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.node(),
                "device": config.device, "backend": config.backend, "generation_sources": generation_sources(rows)},
        "profile": config.profile,
        "model": {**rec.to_dict(), "identity": mut.identity, "system_prompt": mut.system_prompt,
                  "steered": mut.steering is not None},
        "mitigation": {**spec_dict, "hash": spec_hash},
        "suites": {k: {"version": v.version, "content_hash": v.content_hash, "split": config.split,
                       "n_records": len(v.records)} for k, v in suites.items()},
        "generation": {"max_new_tokens": config.max_new_tokens, "temperature": config.temperature,
                       "top_p": config.top_p, "samples_per_prompt": config.samples_per_prompt,
                       "chat_template": True},
        "judge": {**judge_info, "failures": M.judge_failures(rows)},
        "seeds": {"generation": config.seed, "bootstrap": config.seed},
        "config": config.key_dict(),
        "metrics": {k: v.to_dict() for k, v in metrics.items()},
        "metric_suites": metric_suites,
        "breakdowns": dict(breakdown),
        "scores": dict(scores),
        "references": {k: {"identity": v["identity"], "metrics": v["metrics"],
                           "generation_sources": generation_sources(v["samples"])} for k, v in references.items()},
    }
    if mut.retrain is not None:
        out["retrain"] = dict(mut.retrain)
    return out


def generation_sources(rows: Sequence[Mapping]) -> dict[str, int]:
    """How many of the rows' generations were computed in this run, read from this machine's cache, or read from
    the organism's shipped generations (rows written before the field existed count as "unrecorded")."""
    counts: dict[str, int] = {}
    for r in rows:
        if r.get("suite") in GENERATIVE:
            source = r.get("generation_source") or "unrecorded"
            counts[source] = counts.get(source, 0) + 1
    return dict(sorted(counts.items()))


def _spec_hash(spec: Any) -> str:
    if spec is None:
        return hashlib.sha256(b'{"kind":"none"}').hexdigest()
    from benchmark.evaluation.spec import spec_hash

    return spec_hash(spec)


class _Stages:
    """Wall time per stage, for results.json and the closing summary."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.seconds: dict[str, float] = into if into is not None else {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t


def run_evaluation(spec_path: str | Path | None, config: EvalConfig, output_dir: str | Path, *,
                   overwrite: bool = False, progress: Progress | None = None) -> tuple[Path, Outcome]:
    """Validate, check the output dir first (fail fast), evaluate, then write the run directory atomically."""
    spec, config = resolve_spec(spec_path, config)
    R.check_output_dir(output_dir, overwrite=overwrite)
    outcome = evaluate(spec, config, progress=progress)
    path = R.write_run(output_dir, outcome.results, outcome.samples, overwrite=overwrite,
                       reference_samples=outcome.reference_samples)
    return path, outcome


def resolve_spec(spec_path: str | Path | None, config: EvalConfig) -> tuple[Any, EvalConfig]:
    """Load the spec; the profile comes from the flag, else the spec, else the embedded default (they must agree)."""
    spec = None
    if spec_path is not None:
        from benchmark.evaluation.spec import load_spec

        spec = load_spec(spec_path, profile=config.profile or None)
    profile = config.profile or (spec.profile if spec is not None else None) or "smol"
    return spec, replace(config, profile=profile)
