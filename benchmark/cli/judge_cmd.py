"""`organism-bench judge-check JUDGE`: how well a judge agrees with hand-labelled responses."""

from __future__ import annotations

import argparse
from rich.table import Table

from benchcore.formatting import number
from benchmark.cli.base import add_judge_options, console, judge_options, leaf, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judge-check", help="agreement of a judge with the hand-labelled calibration set")
    p.add_argument("judge", help="judge name (see `organism-bench ls --judges`)")
    p.add_argument("--file", default=None,
                   help="calibration JSONL (default: the shipped set, else the seed set in prompts/data)")
    add_judge_options(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    leaf(p, run)


def run(args: argparse.Namespace) -> int:
    from benchmark.judges import get_judge
    from benchmark.judges.calibration import check_judge

    result = check_judge(get_judge(args.judge, **judge_options(args)), args.file)
    if args.json:
        print_json(result)
        return 0
    out = console()
    a = result["agreement"]
    table = Table(title=f"judge {result['judge']['name']} vs {result['file']}", title_justify="left")
    for col in ("n", "failed", "accuracy", "kappa", "precision", "recall", "tp", "fp", "tn", "fn"):
        table.add_column(col, justify="right")
    table.add_row(str(a["n"]), str(a["n_failed"]), *(number(a[k]) for k in ("accuracy", "cohen_kappa", "precision",
                                                                          "recall")),
                  *(str(a[k]) for k in ("tp", "fp", "tn", "fn")))
    out.print(table)
    if result["failures"]["flagged"]:
        out.print(f"[yellow]warning: {result['failures']['n_failed']} judge failures "
                  f"({result['failures']['share']:.1%}) — above the 1% flag[/yellow]")
    return 0

