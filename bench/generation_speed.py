"""Greedy generation on the shipped smol organism: the decode loop with finished rows dropped from the batch (the
engine's path) against the same loop keeping every row until the batch's last one stops (the earlier path), side by
side in one run, on the same prompts, models and batches.

    python bench/generation_speed.py [--stages m0,m1] [--per-suite 64] [--max-new-tokens 96] [--repeats 1] [--json]

Prompts: the first `--per-suite` test prompts of each generative suite (distractor requests, instruction
following, benign controls), chat template applied, as `evaluate` sends them; no generation cache. Each stage's
two paths run interleaved `--repeats` times and the best time is kept (other load on the machine hurts both).
Printed per stage: wall seconds of each path, new tokens per second, the ratio (old time over new) and how many
responses are identical (they must all be: dropping a finished row changes nothing the other rows compute, up to
float rounding). Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import json
import time


def _prompts(per_suite: int):
    from benchmark.evaluation.evaluate import GENERATIVE, EvalConfig, load_suites
    from benchmark.generation.engine import GenerationRequest

    suites = load_suites(EvalConfig(profile="smol"))
    return [GenerationRequest.user(r.id, r.text) for name in GENERATIVE if name in suites
            for r in suites[name].records[:per_suite]]


def _time(backend, requests, config, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = backend.generate(requests, config)
        best = min(best, time.perf_counter() - start)
    return best, out


def run(args: argparse.Namespace) -> dict:
    from benchmark.generation.engine import GenConfig, HFBackend
    from organism.models.loading import load_organism

    requests = _prompts(args.per_suite)
    config = GenConfig(max_new_tokens=args.max_new_tokens)
    report: dict = {"prompts": len(requests), "max_new_tokens": args.max_new_tokens, "stages": {}}
    for stage in args.stages.split(","):
        loaded = load_organism("smol", stage, dtype=args.dtype)
        new = HFBackend(loaded.model, loaded.tokenizer, identity=f"bench-{stage}")
        old = HFBackend(loaded.model, loaded.tokenizer, identity=f"bench-{stage}")
        old.drop_finished_rows = False
        old_s, old_out = _time(old, requests, config, args.repeats)
        new_s, new_out = _time(new, requests, config, args.repeats)
        tokens = sum(g.n_tokens for g in new_out)
        report["stages"][stage] = {
            "dtype": str(next(loaded.model.parameters()).dtype).replace("torch.", ""),
            "old_s": round(old_s, 2), "new_s": round(new_s, 2), "ratio": round(old_s / new_s, 3),
            "new_tokens": tokens, "old_tokens_per_s": round(tokens / old_s, 1),
            "new_tokens_per_s": round(tokens / new_s, 1),
            "stopped_early": sum(g.finish_reason == "stop" for g in new_out),
            "identical": sum(a.response == b.response for a, b in zip(old_out, new_out)),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", default="m0,m1")
    parser.add_argument("--per-suite", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--dtype", default="bfloat16", help="as `evaluate` asks; a CPU without bfloat16 kernels "
                                                            "computes in float32")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['prompts']} prompts, greedy, {report['max_new_tokens']} new tokens at most")
    for stage, r in report["stages"].items():
        print(f"{stage} ({r['dtype']}): keep every row {r['old_s']:.1f} s ({r['old_tokens_per_s']:.0f} tok/s), "
              f"drop finished rows {r['new_s']:.1f} s ({r['new_tokens_per_s']:.0f} tok/s), ratio {r['ratio']:.2f}; "
              f"{r['stopped_early']} stopped before the limit; identical {r['identical']}/{report['prompts']}")


if __name__ == "__main__":
    main()
