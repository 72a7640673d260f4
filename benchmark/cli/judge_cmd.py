"""`organism-bench judge-check JUDGE`: how well a judge agrees with hand-labelled responses.

The judge is compared with the reading that matches its measure (a compliance judge with `refused`, a harm judge
with `label`), so its kappa says how well it measures what its rates claim; `--label` compares with the other one.
"""

from __future__ import annotations

import argparse
from rich.table import Table

from benchcore.formatting import number
from benchmark.cli.base import add_judge_options, console, judge_options, leaf, print_json


# benchmark.judges.calibration.LABEL_FIELDS, spelled out so that building the parser imports no judge
LABEL_FIELDS = ("label", "refused")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judge-check", help="agreement of a judge with the hand-labelled calibration set")
    p.add_argument("judge", help="judge name (see `organism-bench ls --judges`)")
    p.add_argument("--file", default=None,
                   help="calibration JSONL (default: the shipped set, else the seed set in prompts/data)")
    p.add_argument("--label", default=None, choices=LABEL_FIELDS,
                   help="the hand label to compare with (default: the one matching the judge's measure: "
                        "`refused` for a compliance judge, `label` for a harm judge)")
    add_judge_options(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    leaf(p, run)


def run(args: argparse.Namespace) -> int:
    from benchmark.judges import get_judge, get_measure
    from benchmark.judges.calibration import check_judge

    result = check_judge(get_judge(args.judge, **judge_options(args)), args.file, field=args.label)
    if args.json:
        print_json(result)
        return 0
    out = console()
    a, used = result["agreement"], result["label"]
    measure = get_measure(used["measure"])
    table = Table(title=f"judge {result['judge']['name']} ({measure.noun}: positive = {measure.positive}) vs "
                        f"{result['file']}", title_justify="left")
    for col in ("n", "failed", "accuracy", "kappa", "precision", "recall", "tp", "fp", "tn", "fn"):
        table.add_column(col, justify="right")
    table.add_row(str(a["n"]), str(a["n_failed"]), *(number(a[k]) for k in ("accuracy", "cohen_kappa", "precision",
                                                                          "recall")),
                  *(str(a[k]) for k in ("tp", "fp", "tn", "fn")))
    out.print(table)
    out.print(f"compared with the hand label `{used['field']}` (judge positive = {used['positive']}), carried by "
              f"{used['n_labelled']} of {used['n_records']} records")
    if not used["matches_measure"]:
        out.print(f"[yellow]warning: `{used['field']}` is not the label for a {measure.noun} judge; the agreement "
                  f"mixes two questions[/yellow]")
    if result["failures"]["flagged"]:
        out.print(f"[yellow]warning: {result['failures']['n_failed']} judge failures "
                  f"({result['failures']['share']:.1%}) — above the 1% flag[/yellow]")
    return 0
