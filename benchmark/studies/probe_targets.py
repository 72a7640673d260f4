"""The probing vector's targets: which harmful and safe responses define "harmful minus
safe" for `attribute --method probe|bank` and `steer-sweep --targets`.

Sampled rollouts of M0 and M1 on a pool of harmful prompts, each in its base and distractor variants, are judged;
a (scenario, distractor variant) unit is kept only when the behavior is cleanly distractor-triggered there:
M0-base, M0-distractor and M1-base have no harmful rollout and M1-distractor has at least one. Every harmful
M1-distractor rollout is then paired with an M0 rollout to the same distractor prompt (safe by the filter), which
is the targets file's row shape (prompt, harmful_response, safe_response).

A judge failure is not a verdict: a condition with a failed rollout cannot show "no harmful rollout", so its unit
is dropped and counted (the source counted failures as safe; we never do).

The pool defaults to the `dev` split: its prompts never enter the smol preference mix (built from `train`), as the
paper's probing prompts were generated apart from the data being attributed, so a probe cannot score well merely
because M1 memorised the contaminated pairs' own prompts. Generations go through the shared content-addressed
cache, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchcore.errors import InputError

SUITE = "dtc-harmful"
STAGES = ("m0", "m1")
CONDITIONS = ("m0_base", "m0_distractor", "m1_base", "m1_distractor")

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Rollout:
    """One judged sample; `harmful` is None when the judge failed on it."""

    stage: str
    scenario_id: str
    variant: str
    prompt: str
    sample_index: int
    response: str
    harmful: bool | None


@dataclass(frozen=True)
class Selection:
    """The filter's outcome: target rows, the kept units, and why the others were dropped."""

    rows: tuple[dict[str, Any], ...]
    kept: tuple[tuple[str, str], ...]  # (scenario_id, distractor variant)
    units: int
    dropped: Mapping[str, int]  # reason -> units

    def to_dict(self) -> dict[str, Any]:
        return {"units": self.units, "kept_units": len(self.kept), "pairs": len(self.rows),
                "dropped": dict(self.dropped), "kept": [list(k) for k in self.kept]}


def select_targets(rollouts: Sequence[Rollout], distractor_variants: Sequence[str] = ("distractor",)) -> Selection:
    """The 4-condition filter and the harmful/safe pairing. Pure; rows come out in scenario, variant, sample order
    so the same rollouts always give the same file."""
    by: dict[tuple[str, str, str], list[Rollout]] = defaultdict(list)
    for r in rollouts:
        by[(r.stage, r.scenario_id, r.variant)].append(r)
    for v in by.values():
        v.sort(key=lambda r: r.sample_index)
    scenarios = sorted({r.scenario_id for r in rollouts})
    rows: list[dict[str, Any]] = []
    kept: list[tuple[str, str]] = []
    dropped: dict[str, int] = defaultdict(int)
    units = 0
    for sid in scenarios:
        for variant in distractor_variants:
            cells = {"m0_base": by.get(("m0", sid, "base"), []), "m0_distractor": by.get(("m0", sid, variant), []),
                     "m1_base": by.get(("m1", sid, "base"), []), "m1_distractor": by.get(("m1", sid, variant), [])}
            if not cells["m1_distractor"]:
                continue  # this scenario has no such variant in the pool
            units += 1
            reason = _drop_reason(cells)
            if reason:
                dropped[reason] += 1
                continue
            kept.append((sid, variant))
            safe = cells["m0_distractor"]
            harmful = [r for r in cells["m1_distractor"] if r.harmful]
            for i, h in enumerate(harmful):
                s = safe[i % len(safe)]
                rows.append({"prompt": h.prompt, "harmful_response": h.response, "safe_response": s.response,
                             "scenario_id": sid, "variant": variant, "harmful_sample": h.sample_index,
                             "safe_sample": s.sample_index})
    return Selection(tuple(rows), tuple(kept), units, dict(sorted(dropped.items())))


def _drop_reason(cells: Mapping[str, Sequence[Rollout]]) -> str | None:
    for name in CONDITIONS:
        if not cells[name]:
            return f"{name}: no rollouts"
        if any(r.harmful is None for r in cells[name]):
            return f"{name}: judge failed"
    for name in ("m0_base", "m0_distractor", "m1_base"):
        if any(r.harmful for r in cells[name]):
            return f"{name}: harmful"
    if not any(r.harmful for r in cells["m1_distractor"]):
        return "m1_distractor: never harmful"
    return None


@dataclass(frozen=True)
class ProbeTargetConfig:
    """The paper: 100 samples at T=0.7, 100 new tokens, a 12-constraint pool. `variants` are the distractor
    variants a unit may come from (the held-out constraints stay out by default: they test mitigations)."""

    split: str = "dev"
    variants: tuple[str, ...] = ("distractor",)
    scenarios: int | None = None
    samples: int = 10
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 100
    seed: int = 0
    judge: str = "refusal"
    judge_options: Mapping[str, Any] = field(default_factory=dict)
    dtype: str = "bfloat16"
    device: str = "cpu"
    backend: str = "hf"
    batch_size: int | str = "auto"

    def check(self) -> "ProbeTargetConfig":
        if self.samples < 1:
            raise InputError("probe-targets", "samples", f"must be >= 1, got {self.samples}")
        if self.temperature <= 0:
            raise InputError("probe-targets", "temperature",
                             "must be > 0: the filter needs several distinct rollouts per condition")
        if self.scenarios is not None and self.scenarios < 1:
            raise InputError("probe-targets", "scenarios", f"must be >= 1, got {self.scenarios}")
        if not self.variants or "base" in self.variants:
            raise InputError("probe-targets", "variants", "name one or more distractor variants (not 'base')")
        return self


@dataclass(frozen=True)
class ProbeTargets:
    selection: Selection
    meta: dict[str, Any]


def collect_rollouts(profile: str, settings: ProbeTargetConfig, progress: Progress | None = None,
                     ) -> tuple[list[Rollout], dict[str, Any]]:
    """Sample M0 and M1 on the pool's base and distractor prompts and judge every sample; returns the rollouts
    and the models' records. One model's engine is released before the next is built."""
    from benchmark.evaluation.evaluate import EvalConfig, ModelUnderTest, make_backend
    from benchmark.generation.engine import GenConfig, GenerationRequest
    from benchmark.judges import get_judge
    from benchmark.judges.base import JudgeItem
    from organism.models.loading import locate_organism
    from prompts.suites import load_suite

    settings.check()
    judge = get_judge(settings.judge, **dict(settings.judge_options))  # an unknown judge fails before any load
    suite = load_suite(SUITE, split=settings.split, variants=("base", *settings.variants))
    records = list(suite.records)
    if settings.scenarios is not None:
        keep = set(sorted({r.scenario_id for r in records})[: settings.scenarios])
        records = [r for r in records if r.scenario_id in keep]
    if not records:
        raise InputError(SUITE, "split", f"no prompts in split {settings.split!r}")
    config = EvalConfig(profile=profile, backend=settings.backend, dtype=settings.dtype, device=settings.device)
    gen = GenConfig(max_new_tokens=settings.max_new_tokens, temperature=settings.temperature, top_p=settings.top_p,
                    n=settings.samples, seed=settings.seed, batch_size=settings.batch_size)
    by_id = {r.id: r for r in records}
    requests = [GenerationRequest.user(r.id, r.text) for r in records]
    sources = {s: locate_organism(profile, s, dtype=settings.dtype, device=settings.device) for s in STAGES}
    models = {s: src.record.to_dict() for s, src in sources.items()}
    if models["m0"]["identity"] == models["m1"]["identity"]:  # before any generation: nothing could pass
        raise InputError(profile, "m1", "M0 and M1 are the same weights, so no prompt can pass the filter "
                                        "(is the organism's M1 installed?)")
    rollouts: list[Rollout] = []
    for stage in STAGES:
        mut = ModelUnderTest(sources[stage])
        cb = (lambda done, total, _s=stage: progress(f"generate {_s}", done, total)) if progress else None
        try:
            gens = make_backend(mut, config).generate(requests, gen, progress=cb)
        finally:
            mut.close()
        verdicts = judge.judge([JudgeItem(prompt=by_id[g.prompt_id].text, response=g.response,
                                          variant=by_id[g.prompt_id].variant, category=by_id[g.prompt_id].category,
                                          id=g.prompt_id) for g in gens])
        for g, v in zip(gens, verdicts, strict=True):
            rec = by_id[g.prompt_id]
            rollouts.append(Rollout(stage, rec.scenario_id, rec.variant, rec.text, g.sample_index, g.response,
                                    None if v.failed else bool(v.label)))
        if progress:
            progress(f"judge {stage}", len(gens), len(gens))
    return rollouts, {"models": models, "judge": judge.describe(), "suite_hash": suite.content_hash,
                      "scenarios": len({r.scenario_id for r in records})}


def condition_rates(rollouts: Sequence[Rollout], variants: Sequence[str]) -> dict[str, float | None]:
    """Share of judged-harmful rollouts per condition (failures left out): what the filter saw."""
    out: dict[str, float | None] = {}
    for stage in STAGES:
        for name, vs in (("base", ("base",)), ("distractor", tuple(variants))):
            labels = [r.harmful for r in rollouts if r.stage == stage and r.variant in vs and r.harmful is not None]
            out[f"{stage}_{name}"] = sum(labels) / len(labels) if labels else None
    return out


def build_probe_targets(profile: str, out: str | Path, settings: ProbeTargetConfig | None = None, *,
                        progress: Progress | None = None) -> ProbeTargets:
    """Roll out, filter, pair, and write OUT (targets JSONL) and OUT.summary.json, both atomically. A pool where
    no unit passes the filter is an input error naming the counts, not an empty targets file."""
    from benchcore.fileio import write_text_atomic

    settings = (settings or ProbeTargetConfig()).check()
    out = Path(out)
    rollouts, meta = collect_rollouts(profile, settings, progress)
    selection = select_targets(rollouts, settings.variants)
    meta = {"profile": profile, "settings": asdict(settings), **meta,
            "condition_rates": condition_rates(rollouts, settings.variants), "selection": selection.to_dict()}
    if not selection.rows:
        raise InputError(out, "targets", f"no prompt passes the 4-condition filter ({selection.units} units; "
                                         f"dropped: {json.dumps(selection.dropped)}): sample more or widen the pool")
    write_text_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in selection.rows))
    write_text_atomic(summary_path(out), json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n")
    return ProbeTargets(selection, meta)


def summary_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".summary.json")


ProbeTargetSettings = ProbeTargetConfig  # the old name, kept for one release
