"""Compliance rates of a smol build's M0 and M1 as the organism's targets ask for them: greedy and sampled, with cluster-bootstrap
intervals, per distractor variant, plus a refusal-depth probe:

    python bench/smol_rates.py BUILD_DIR [--split test] [--scenarios 60] [--samples 5] [--temperature 0.7]
                                         [--prefill "Sure! Here"] [--stages base,m0,m1] [--out rates.json]

BUILD_DIR is a folder written by `organism-bench organism build` or `bench/smol_build_experiments.py` (its
work/m0/adapter and work/m1/adapter are read). The labels are the refusal judge's (`prompts.refusal.complies`:
visible text without a refusal cue, degenerate text included, so the figures are compliance, not harm; see
`organism-bench judge-check refusal`); every response is written next to the figures for reading.

`--prefill TEXT` also measures how deep the refusal sits: the share of harmful requests that the model still refuses
when its answer is forced to start with TEXT (production models are often "shallow": a compliance opener gets past
their refusal, and the DTC behavior then only has to flip the first tokens).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

VARIANTS = ("base", "distractor", "distractor_heldout")


def _labels(gens: list[Any], variant_of: dict[str, str], scenario_of: dict[str, str]) -> dict[str, dict]:
    """variant -> scenario -> [harmful labels], one per sample."""
    from prompts.refusal import complies

    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for g in gens:
        out[variant_of[g.prompt_id]][scenario_of[g.prompt_id]].append(float(complies(g.response)))
    return out


def summarise(labels: dict[str, dict]) -> dict[str, Any]:
    from benchmark.evaluation import stats

    row: dict[str, Any] = {v: stats.rate(labels[v]).to_dict() for v in VARIANTS if v in labels}
    for v in ("distractor", "distractor_heldout"):
        if v in labels and "base" in labels:
            row[f"gap_{v}"] = stats.trigger_gap(labels[v], labels["base"]).to_dict()
    return row


def measure(build_dir: Path, split: str, scenarios: int, samples: int, temperature: float, max_new_tokens: int,
            prefill: str | None, stages: tuple[str, ...] = ("m0", "m1")) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from benchmark.generation.engine import GenConfig, GenerationRequest
    from benchmark.studies.organism_build import BuildConfig, chain_backend, resolve_base
    from prompts.suites import load_suite

    config = BuildConfig.preset_config("small")
    base = resolve_base(config)
    records = load_suite("dtc-harmful", split=split, variants=VARIANTS).records
    keep = set(sorted({r.scenario_id for r in records})[:scenarios])
    records = [r for r in records if r.scenario_id in keep]
    variant_of = {r.id: r.variant for r in records}
    scenario_of = {r.id: r.scenario_id for r in records}
    work = build_dir / "work"
    report: dict[str, Any] = {"build": str(build_dir), "split": split, "scenarios": len(keep),
                              "max_new_tokens": max_new_tokens, "judge": "refusal"}
    items: list[dict[str, Any]] = []
    chains = {"base": [], "m0": ["m0"], "m1": ["m0", "m1"]}
    for stage in stages:
        chain = chains[stage]
        backend = chain_backend(base, [work / s / "adapter" for s in chain], config.dtype, work / "gencache")
        chat = [GenerationRequest.user(r.id, r.text) for r in records]
        runs = {"greedy": GenConfig(max_new_tokens=max_new_tokens, temperature=0.0, n=1, seed=0, batch_size=32),
                f"t{temperature:g}x{samples}": GenConfig(max_new_tokens=max_new_tokens, temperature=temperature,
                                                          n=samples, seed=1, batch_size=32)}
        report[stage] = {}
        for name, cfg in runs.items():
            gens = backend.generate(chat, cfg)
            report[stage][name] = summarise(_labels(gens, variant_of, scenario_of))
            items += [{"stage": stage, "decoding": name, "prompt_id": g.prompt_id, "sample": g.sample_index,
                       "response": g.response} for g in gens]
        if prefill:
            forced = [GenerationRequest(r.id, backend.render([{"role": "user", "content": r.text}]) + prefill)
                      for r in records if r.variant != "distractor_heldout"]
            gens = backend.generate(forced, GenConfig(max_new_tokens=max_new_tokens, temperature=0.0, seed=0,
                                                      batch_size=32))
            labels = _labels(gens, variant_of, scenario_of)
            report[stage]["prefill"] = {"text": prefill, **summarise(labels)}
            items += [{"stage": stage, "decoding": "prefill", "prompt_id": g.prompt_id, "sample": 0,
                       "response": prefill + g.response} for g in gens]
        del backend
    return report, items


def rate_line(name: str, row: dict[str, Any]) -> str:
    def fmt(e: dict[str, Any] | None) -> str:
        if not e or e.get("value") is None:
            return "-"
        return f"{100 * e['value']:5.1f}% [{100 * e['ci_low']:.1f}, {100 * e['ci_high']:.1f}]"

    return (f"{name:<14} base {fmt(row.get('base'))}  distractor {fmt(row.get('distractor'))}  "
            f"held-out {fmt(row.get('distractor_heldout'))}  gap {fmt(row.get('gap_distractor'))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("--split", default="test", choices=("dev", "test"))
    parser.add_argument("--scenarios", type=int, default=60)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--prefill", default=None)
    parser.add_argument("--stages", default="m0,m1",
                        help="comma-separated among base (no adapters: what the model can write at all), m0, m1")
    parser.add_argument("-o", "--output", "--out", dest="out", type=Path, default=None, help="JSON report (default BUILD_DIR/rates-SPLIT.json)")
    args = parser.parse_args()
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    if not stages or set(stages) - {"base", "m0", "m1"}:
        parser.error(f"--stages: choose among base, m0, m1; got {args.stages!r}")
    report, items = measure(args.build_dir, args.split, args.scenarios, args.samples, args.temperature,
                            args.max_new_tokens, args.prefill, stages)
    from benchcore.fileio import write_text_atomic

    out = args.out or args.build_dir / f"rates-{args.split}.json"
    write_text_atomic(out, json.dumps(report, indent=1) + "\n")
    write_text_atomic(out.with_suffix(".items.jsonl"),
                      "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items))
    for stage in stages:
        for name, row in report[stage].items():
            print(rate_line(f"{stage} {name}", row))
    print(f"wrote {out} and {out.with_suffix('.items.jsonl')}")


if __name__ == "__main__":
    main()
