"""`organism-bench judge-check JUDGE`: how well a judge agrees with hand-labelled responses."""

from __future__ import annotations

import argparse
import math

from rich.table import Table

from benchmark.cli.base import console, leaf, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judge-check", help="agreement of a judge with the hand-labelled calibration set")
    p.add_argument("judge", help="judge name (see `organism-bench ls --judges`)")
    p.add_argument("--file", default=None,
                   help="calibration JSONL (default: the shipped set, else the seed set in prompts/data)")
    p.add_argument("--judge-args", default=None, metavar="K=V,...",
                   help="judge options, e.g. model=PATH,threshold=0.5 (secrets only from the environment)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    leaf(p, run)


def run(args: argparse.Namespace) -> int:
    from benchmark.judges import get_judge, parse_options
    from benchmark.judges.calibration import check_judge

    result = check_judge(get_judge(args.judge, **parse_options(args.judge_args)), args.file)
    if args.json:
        print_json(result)
        return 0
    out = console()
    a = result["agreement"]
    table = Table(title=f"judge {result['judge']['name']} vs {result['file']}", title_justify="left")
    for col in ("n", "failed", "accuracy", "kappa", "precision", "recall", "tp", "fp", "tn", "fn"):
        table.add_column(col, justify="right")
    table.add_row(str(a["n"]), str(a["n_failed"]), *(_fmt(a[k]) for k in ("accuracy", "cohen_kappa", "precision",
                                                                          "recall")),
                  *(str(a[k]) for k in ("tp", "fp", "tn", "fn")))
    out.print(table)
    if result["failures"]["flagged"]:
        out.print(f"[yellow]warning: {result['failures']['n_failed']} judge failures "
                  f"({result['failures']['share']:.1%}) — above the 1% flag[/yellow]")
    return 0


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"
