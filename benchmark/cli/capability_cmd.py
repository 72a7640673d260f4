"""`organism-bench capability`: the paper's IFEval / XSTest / GSM8K checks through lm-eval or inspect_evals."""

from __future__ import annotations

import argparse

from benchmark.cli.base import console, leaf, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("capability", help="the paper's capability checks on an OLMo profile (lm-eval / inspect)")
    p.add_argument("--profile", required=True)
    p.add_argument("--stage", default="m1", choices=["m0", "m1"])
    p.add_argument("--harness", default="lm-eval", choices=["lm-eval", "inspect"])
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dry-run", action="store_true", help="print what would run, run nothing")
    p.add_argument("--json", action="store_true")
    leaf(p, run)


def run(args: argparse.Namespace) -> int:
    from benchmark.evaluation.harness import plan_paper_capability, run_paper_capability

    plan = plan_paper_capability(args.profile, args.stage, harness=args.harness, limit=args.limit,
                                 dtype=args.dtype, device=args.device)
    result = {"plan": plan.__dict__, "not_run": plan.not_run} if args.dry_run else run_paper_capability(plan)
    if args.json:
        print_json(result)
    else:
        out = console()
        out.print(f"{plan.harness}: {plan.repo_id}@{plan.revision} tasks {sorted(plan.tasks.values())}")
        for check, why in plan.not_run.items():
            out.print(f"[yellow]{check}: not run ({why})[/yellow]")
        if not args.dry_run:
            out.print(result["results"])
    return 0
