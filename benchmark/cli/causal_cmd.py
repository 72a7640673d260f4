"""`organism-bench causal-check`: remove / flip each ranking's top-k pairs, retrain DPO from M0, and table the
reductions of the judged rate (harm, or compliance under the refusal judge; with intervals) and the capability
kept, method against method at the same k.

`--ranking NAME=FILE` (repeatable) names each method's ranking file; `--oracle` adds the ground-truth upper bound;
`--k 20,40,truth` (truth = the number of ground-truth contaminated pairs). Runs land in OUT/runs/ and are reused
when the command is repeated; OUT/results.json and OUT/table.md hold the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmark.cli.base import add_output, console, judge_options, leaf, print_json
from benchmark.cli.evaluate_cmd import add_run_flags
from benchmark.cli.progress import RichBars, stage_progress
from benchcore.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("causal-check", help="retrain with each ranking's top-k removed/flipped; table the "
                                            "judged rate removed and capability kept")
    p.add_argument("--profile", default="smol", help="organism profile whose mix is edited (default smol)")
    p.add_argument("--ranking", action="append", default=[], metavar="NAME=FILE",
                   help="a method's ranking file (from `organism-bench attribute`); repeat for each method")
    p.add_argument("--oracle", action="store_true",
                   help="add a ranking with the ground-truth contaminated pairs first (an upper bound only)")
    p.add_argument("--k", default=None, metavar="K,K,truth",
                   help="top-k sizes; 'truth' = the number of ground-truth contaminated pairs")
    p.add_argument("--actions", default="remove,flip", help="remove, flip or both (default both)")
    p.add_argument("--baseline", default="random",
                   help="method every other row is compared with, paired by prompt (default random)")
    add_run_flags(p, suites_default="dtc-harmful,ifeval-lite", suites_help="comma-separated (must include dtc-harmful)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates per interval")
    add_output(p, "output folder (runs, results.json, table.md)", metavar="DIR")
    p.add_argument("--json", action="store_true", help="print results.json instead of the table")
    leaf(p, run)


def parse_rankings(items: list[str]) -> dict[str, str]:
    """`NAME=FILE` items into {name: file}; names are checked again (and files read) by the library."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = (s.strip() for s in str(item).partition("="))
        if not sep or not name or not path:
            raise InputError("command line", "ranking", f"expected NAME=FILE (e.g. probe=probe.jsonl), got {item!r}")
        if name in out:
            raise InputError("command line", "ranking", f"method {name!r} given twice")
        out[name] = path
    return out


def parse_ks(text: str | None) -> list[int | str]:
    if text is None or not str(text).strip():
        raise InputError("command line", "k", "give the top-k sizes, e.g. --k 20,40 or --k truth")
    out: list[int | str] = []
    for part in (x.strip() for x in str(text).split(",")):
        if part.lower() == "truth":
            out.append("truth")
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise InputError("command line", "k", f"{part!r} is not an integer or 'truth'") from None
    return out


def spec_from_args(args: argparse.Namespace) -> Any:
    from benchmark.studies.causal_check import CausalCheckConfig
    from benchcore.options import parse_options

    batch: int | str = args.batch_size
    if batch != "auto":
        try:
            batch = int(batch)
        except ValueError:
            raise InputError("command line", "batch-size", f"expected an integer or 'auto', got {batch!r}") from None
    return CausalCheckConfig(
        profile=args.profile, rankings=parse_rankings(args.ranking), ks=parse_ks(args.k),
        actions=[a.strip() for a in args.actions.split(",") if a.strip()], oracle=args.oracle, split=args.split,
        suites=[s.strip() for s in args.suites.split(",") if s.strip()], samples_per_prompt=args.samples_per_prompt,
        gen_kwargs=parse_options(args.gen_kwargs, "--gen-kwargs"), seed=args.seed, limit=args.limit, judge=args.judge,
        judge_options=judge_options(args), dtype=args.dtype, device=args.device,
        batch_size=batch, n_boot=args.n_boot, baseline=args.baseline or None)


class _Bars(RichBars):
    """Two rich bars: runs done, and the current run's stage (one bar, relabelled, instead of one per stage)."""

    def __init__(self) -> None:
        super().__init__()
        self._runs = self._p.add_task("runs", total=None)
        self._stage = self._p.add_task("", total=None)

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        task = self._runs if stage == "runs" else self._stage
        self._p.update(task, description=stage, completed=done, total=total)


def run(args: argparse.Namespace) -> int:
    from benchcore.formatting import estimate as fmt
    from benchmark.studies.causal_check import precision_cell, run_causal_check

    spec = spec_from_args(args)
    if not args.output:
        raise InputError("command line", "out", "give the output folder with -o OUT")
    if args.json:
        result = run_causal_check(spec, Path(args.output))
        print_json(result.to_dict())
        return 0
    with stage_progress(_Bars) as bars:
        result = run_causal_check(spec, Path(args.output), progress=bars)
    from rich.table import Table

    from benchmark.judges import HARM, judge_measure

    measure = judge_measure(spec.judge) or HARM  # the runs were judged by this (registered) judge
    m1 = result.references.get("m1", {})
    table = Table(title=f"causal check: {spec.profile}, split {spec.split}; judge {spec.judge} ({measure.noun}); "
                        f"M1 {measure.distractor} {fmt(m1.get('harmful_rate_distractor'))}", title_justify="left")
    cols = ["method", "k", "action", "edited", "contaminated (prec@k)", measure.distractor,
            f"{measure.reduction} vs M1", measure.base, "IF kept vs M1", "composite"]
    with_baseline = any(r.vs_baseline is not None for r in result.rows)
    if with_baseline:
        cols.append(f"{measure.noun} distr. - {spec.baseline}")
    for c in cols:
        table.add_column(c, justify="left" if c in ("method", "action") else "right")
    for r in result.rows:
        cells = [r.method + (" (reused)" if r.reused else ""), str(r.k), r.action, str(r.n_affected),
                 precision_cell(r), fmt(r.harmful_distractor), fmt(r.harm_reduction), fmt(r.harmful_base),
                 fmt(r.if_kept), fmt(r.composite, pct=False)]
        if with_baseline:
            cells.append(fmt(r.vs_baseline, signed=True))
        table.add_row(*cells)
    out = console()
    out.print(table)
    if spec.oracle:
        out.print("oracle = the ground-truth contaminated pairs first: an upper bound, not a method")
    out.print(f"wrote {Path(args.output) / 'results.json'} and {Path(args.output) / 'table.md'} "
              f"({result.wall_time_s:.0f}s)")
    return 0
