"""`organism-bench probe-targets`: the targets file the probing vector is computed from (benchmark.studies.probe_targets)."""

from __future__ import annotations

import argparse

from benchmark.cli.base import add_judge_options, add_output, console, judge_options, leaf, print_json


def _batch_size(text: str) -> int | str:
    return text if text == "auto" else int(text)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe-targets", help="sample M0/M1, keep distractor-triggered prompts (4-condition filter), "
                                             "write harmful/safe target pairs")
    p.add_argument("--profile", required=True, help="organism profile (see `organism-bench ls --profiles`)")
    p.add_argument("--split", default="dev", choices=("train", "dev", "test"),
                   help="prompt pool (default dev: never in the smol mix, and not the reported test split)")
    p.add_argument("--variants", default="distractor",
                   help="comma-separated distractor variants a unit may come from (default: distractor)")
    p.add_argument("--scenarios", type=int, default=None, help="only the first N scenarios of the split")
    p.add_argument("-n", "--samples", type=int, default=10, help="rollouts per prompt and model (paper: 100)")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--judge", default="refusal", help="a registered judge name")
    add_judge_options(p)
    p.add_argument("--backend", choices=("hf", "vllm"), default="hf")
    p.add_argument("--batch-size", type=_batch_size, default="auto")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="bfloat16")
    add_output(p, "targets JSONL to write (and OUTPUT.summary.json)", required=True)
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    leaf(p, run)


def run(args: argparse.Namespace) -> int:
    from benchmark.studies.probe_targets import ProbeTargetConfig, build_probe_targets, summary_path

    settings = ProbeTargetConfig(
        split=args.split, variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
        scenarios=args.scenarios, samples=args.samples, temperature=args.temperature, top_p=args.top_p,
        max_new_tokens=args.max_new_tokens, seed=args.seed, judge=args.judge,
        judge_options=judge_options(args), dtype=args.dtype,
        device=args.device, backend=args.backend, batch_size=args.batch_size)
    if args.json:
        done = build_probe_targets(args.profile, args.output, settings)
    else:
        from benchmark.cli.progress import stage_progress

        with stage_progress() as bar:
            done = build_probe_targets(args.profile, args.output, settings,
                                       progress=lambda stage, d, t: bar(f"probe-targets: {stage}", d, t))
    sel = done.selection
    summary = {"out": args.output, "summary": str(summary_path(args.output)), **sel.to_dict(),
               "condition_rates": done.meta["condition_rates"]}
    summary.pop("kept")
    if args.json:
        print_json(summary)
        return 0
    from benchmark.judges import HARM, judge_measure

    measure = judge_measure(args.judge) or HARM
    rates = ", ".join(f"{k} {100 * v:.1f}%" for k, v in summary["condition_rates"].items() if v is not None)
    console().print(f"judged {measure.positive} (judge {args.judge}): {rates}")
    console().print(f"{len(sel.kept)} of {sel.units} prompts pass the 4-condition filter; "
                    f"{len(sel.rows)} harmful/safe pairs written to {args.output}")
    for reason, n in sel.dropped.items():
        console().print(f"  dropped {n}: {reason}")
    return 0
