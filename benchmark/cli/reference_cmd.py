"""`organism-bench reference build`: the reference grid on the shipped organism (benchmark.studies.reference_grid).

Resumable: run it again with the same -o and it reuses every ranking and finished row. `--ship` writes the
leaderboard bundle into the package (leaderboard/data/<profile>_reference.json), and beside the organism the probe
and first random rankings (`examples/` reads them) and M0's and M1's generations under `evaluate`'s defaults (a
fresh install's references then need no generating).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from benchmark.cli.base import add_output, console, leaf, print_json
from benchmark.cli.evaluate_cmd import add_run_flags
from benchmark.cli.progress import stage_progress
from benchcore.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    top = sub.add_parser("reference", help="the reference grid of the shipped organism (leaderboard rows)")
    verbs = top.add_subparsers(dest="reference_verb", required=True, metavar="VERB")
    p = verbs.add_parser("build", help="rank with every method, retrain with top-k removed/flipped, grade; resumable")
    p.add_argument("--profile", default="smol")
    p.add_argument("--methods", default="probe,judge-delta,gradient,random",
                   help="comma-separated among probe, judge-delta, gradient, random (the oracle always runs)")
    p.add_argument("--random-seeds", default="0,1,2", help="seeds of the random rankings")
    p.add_argument("--targets", default=None, help="probe/gradient targets JSONL (default: the organism's shipped one)")
    p.add_argument("--judge-delta-judge", default=None,
                   help="judge of the judge-delta row: one that did not make the ground-truth labels")
    p.add_argument("--judge-delta-option", action="append", default=[], metavar="KEY=VALUE")
    add_run_flags(p, suites_default="dtc-harmful,ifeval-lite,benign-control",
                  suites_help="comma-separated (must include dtc-harmful; benign-control gives over-refusal)")
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--max-rows", type=int, default=None, help="run the plan's first N rows (finished rows are always read back; the rest are listed as not run)")
    add_output(p, "output folder (rankings, check/, grid.json)", required=True, metavar="DIR")
    p.add_argument("--bundle", default=None, help="leaderboard bundle to write (default OUT/<profile>_reference.json)")
    p.add_argument("--ship", action="store_true",
                   help="write the bundle into the package's leaderboard/data and the rankings beside the organism")
    p.add_argument("--json", action="store_true", help="print grid.json instead of the table")
    leaf(p, run)


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError("command line", flag, f"expected comma-separated integers, got {text!r}") from None


def spec_from_args(args: argparse.Namespace) -> Any:
    from benchmark.studies.reference_grid import ReferenceGridConfig
    from benchcore.options import parse_options

    if args.judge_option:
        raise InputError("command line", "judge-option", "the grid grades with a registered judge's defaults; "
                                                         "give judge-delta options with --judge-delta-option")
    batch: int | str = args.batch_size if args.batch_size == "auto" else _ints(args.batch_size, "batch-size")[0]
    return ReferenceGridConfig(
        profile=args.profile, methods=[m.strip() for m in args.methods.split(",") if m.strip()],
        random_seeds=_ints(args.random_seeds, "random-seeds"), targets=args.targets,
        judge_delta_judge=args.judge_delta_judge,
        judge_delta_options=parse_options(",".join(args.judge_delta_option), "--judge-delta-option"),
        split=args.split, suites=[s.strip() for s in args.suites.split(",") if s.strip()],
        samples_per_prompt=args.samples_per_prompt, gen_kwargs=parse_options(args.gen_kwargs, "--gen-kwargs"),
        seed=args.seed, limit=args.limit, judge=args.judge, dtype=args.dtype, device=args.device,
        batch_size=batch, n_boot=args.n_boot, max_rows=args.max_rows)


def ship(grid: dict[str, Any], bundle: Path, spec: Any) -> list[Path]:
    """Copy the bundle and the rankings examples read into the package, and export M0's and M1's generations
    under `evaluate`'s defaults beside the organism (a maintainer's step: editable install)."""
    import leaderboard
    from benchmark.evaluation.evaluate import EvalConfig
    from benchmark.evaluation.shipped_generations import export_reference_generations
    from organism.models.profiles import ADAPTERS_DIR

    profile = spec.profile
    if profile != "smol":
        raise InputError("command line", "ship", f"only the smol organism ships inside the package, not {profile!r}")
    written = [Path(leaderboard.__file__).parent / "data" / f"{profile}_reference.json"]
    shutil.copyfile(bundle, written[0])
    organism_dir = ADAPTERS_DIR / "smol"  # the package's own copy, never a pulled one
    for name, target in (("probe", "probe_ranking.jsonl"), ("random-s0", "random_ranking_seed0.jsonl")):
        info = grid["rankings"].get(name)
        if info and Path(info["file"]).is_file():
            written.append(organism_dir / target)
            shutil.copyfile(info["file"], written[-1])
    export_reference_generations(EvalConfig(profile=profile, dtype=spec.dtype, device=spec.device,
                                            batch_size=spec.batch_size), organism_dir)
    written.extend(sorted((organism_dir / "generations").glob("*.jsonl.gz")))
    return written


def run(args: argparse.Namespace) -> int:
    from benchcore.formatting import estimate as fmt
    from benchmark.studies.reference_grid import run_reference_grid

    spec = spec_from_args(args)
    out = Path(args.output)
    bundle = Path(args.bundle) if args.bundle else out / f"{spec.profile}_reference.json"
    command = f"organism-bench reference build --profile {spec.profile} --methods {','.join(spec.methods)} -o {out}"
    if args.json:
        grid = run_reference_grid(spec, out, bundle=bundle, command=command)
    else:
        with stage_progress() as bars:
            grid = run_reference_grid(spec, out, bundle=bundle, command=command, progress=bars)
    shipped = ship(grid, bundle, spec) if args.ship else []
    if args.json:
        print_json(grid)
        return 0
    from rich.table import Table

    table = Table(title=f"reference grid: {spec.profile} ({len(grid['rows'])} rows run, {len(grid['not_run'])} not yet)",
                  title_justify="left")
    for c in ("ranking", "k", "action", "prec@k", "AUROC", "compliance distractor", "reduction vs M1", "IF kept",
              "composite"):
        table.add_column(c, justify="left" if c in ("ranking", "action") else "right")
    for r in grid["rows"]:
        table.add_row(r["ranking"], str(r["k"]), r["action"],
                      "-" if r["precision_at_k"] is None else f"{100 * r['precision_at_k']:.0f}%",
                      "-" if r["auroc"] is None else f"{r['auroc']:.3f}", fmt(r["compliance_distractor"]),
                      fmt(r["reduction"]), fmt(r["if_kept"]), fmt(r["composite"], pct=False))
    out_console = console()
    out_console.print(table)
    for v in grid["versus_random"]:
        out_console.print(f"{v['ranking']} remove k={v['k']} vs mean of random seeds {v['random_seeds']}: "
                          f"{fmt(v['rate_minus_random_mean'], signed=True)}"
                          f" ({'beats random' if v['beats_random'] else 'not told apart'})")
    out_console.print(f"wrote {out / 'grid.json'} and {bundle}" + (f"; shipped {', '.join(map(str, shipped))}"
                                                                    if shipped else ""))
    return 0
