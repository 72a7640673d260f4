"""`organism-bench evaluate | generate | rejudge`: grade a mitigation, only generate, or re-score saved generations."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchmark.cli.base import add_judge_options, add_output, console, judge_options, leaf, print_json
from benchmark.cli.progress import RichBars, stage_progress
from benchcore.errors import InputError
from benchcore.formatting import estimate
from benchcore.options import parse_options


def add_run_flags(p: Any, *, suites_default: str | None, suites_help: str) -> None:
    """The generation and judging flags every command that runs an evaluation shares."""
    p.add_argument("--split", default="test", choices=["train", "dev", "test"])
    p.add_argument("--suites", default=suites_default, help=suites_help)
    p.add_argument("--limit", type=int, default=None, help="first N scenarios of each suite (all their variants)")
    p.add_argument("-n", "--samples-per-prompt", type=int, default=1)
    p.add_argument("--gen-kwargs", default="", help="e.g. temperature=0.7,top_p=0.95,max_new_tokens=100")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", default="auto")
    p.add_argument("--judge", default="refusal")
    add_judge_options(p)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"])
    p.add_argument("--device", default="cpu")


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluate", help="grade a mitigation (default: the M1 baseline of the embedded organism)")
    _common(ev)
    ev.add_argument("--no-references", action="store_true", help="skip the M0/M1 reference runs and scores")
    leaf(ev, run_evaluate)

    gen = sub.add_parser("generate", help="generate on the suites without judging (fills the cache)")
    _common(gen)
    leaf(gen, run_generate)

    rj = sub.add_parser("rejudge", help="re-score a run's saved generations with another judge (no model needed)")
    rj.add_argument("run_dir", metavar="RUN")
    rj.add_argument("--judge", required=True)
    add_judge_options(rj)
    add_output(rj, "where to write the re-judged run (default: RUN-<judge>)", metavar="DIR")
    rj.add_argument("--overwrite", action="store_true")
    rj.add_argument("--json", action="store_true")
    leaf(rj, run_rejudge)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", metavar="SPEC", help="mitigation spec (YAML/JSON); none = the M1 baseline")
    p.add_argument("--profile", default="", help="organism profile (default: the spec's, else smol)")
    add_run_flags(p, suites_default=None, suites_help="comma-separated suite names (default: all four)")
    p.add_argument("--backend", default="hf", choices=["hf", "vllm"])
    p.add_argument("--no-shipped-generations", action="store_true",
                   help="generate M0's and M1's answers on this machine instead of reading the organism's shipped ones")
    p.add_argument("--benchmark-source", default=None, metavar="FOLDER|REPO@REV",
                   help="prompt suites from a pulled/exported benchmark instead of the shipped files")
    add_output(p, "run directory (default: runs/<profile>-<spec name>)", metavar="DIR")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--json", action="store_true", help="print results.json instead of the summary table")


def config_from_args(args: argparse.Namespace):
    from benchmark.evaluation.evaluate import DEFAULT_SUITES, EvalConfig

    gk = parse_options(args.gen_kwargs, "--gen-kwargs")
    unknown = set(gk) - {"temperature", "top_p", "max_new_tokens"}
    if unknown:
        raise InputError("command line", "gen-kwargs", f"unknown keys {sorted(unknown)} (known: temperature, top_p, max_new_tokens)")
    if args.samples_per_prompt < 1:
        raise InputError("command line", "samples-per-prompt", "must be at least 1")
    if args.limit is not None and args.limit < 1:
        raise InputError("command line", "limit", "must be at least 1")
    bs: int | str = args.batch_size
    if bs != "auto":
        try:
            bs = int(bs)
        except ValueError:
            raise InputError("command line", "batch-size", f"expected an integer or 'auto', got {bs!r}") from None
    suites = tuple(s.strip() for s in args.suites.split(",")) if args.suites else DEFAULT_SUITES
    return EvalConfig(
        profile=args.profile, split=args.split, suites=suites, limit=args.limit,
        max_new_tokens=int(gk.get("max_new_tokens", 96)), temperature=float(gk.get("temperature", 0.0)),
        top_p=float(gk.get("top_p", 1.0)), samples_per_prompt=args.samples_per_prompt, seed=args.seed,
        batch_size=bs, judge=args.judge, judge_options=judge_options(args),
        dtype=args.dtype, device=args.device, backend=args.backend,
        references=not getattr(args, "no_references", False), benchmark_source=args.benchmark_source,
        shipped_generations=not args.no_shipped_generations,
    )


def default_output_dir(args: argparse.Namespace, suffix: str = "") -> Path:
    name = Path(args.spec).stem if args.spec else "m1-baseline"
    return Path("runs") / f"{args.profile or 'smol'}-{name}{suffix}"


class RichProgress(RichBars):
    """One rich bar per stage, fed by the library's progress(stage, done, total) callback."""

    def __init__(self) -> None:
        super().__init__(transient=False)
        self._tasks: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if stage not in self._tasks:
            self._tasks[stage] = self._p.add_task(stage, total=total)
        self._p.update(self._tasks[stage], completed=done, total=total)


def run_evaluate(args: argparse.Namespace) -> int:
    from benchmark.evaluation.evaluate import run_evaluation

    config = config_from_args(args)
    out_dir = Path(args.output) if args.output else default_output_dir(args)
    t = time.time()
    if args.json:
        path, outcome = run_evaluation(args.spec, config, out_dir, overwrite=args.overwrite)
        print_json(outcome.results)
        return 0
    with stage_progress(RichProgress) as progress:
        path, outcome = run_evaluation(args.spec, config, out_dir, overwrite=args.overwrite, progress=progress)
    print_summary(outcome.results, path, time.time() - t)
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from benchmark.evaluation import evaluate as E
    from benchmark.evaluation import results as R

    config = config_from_args(args)
    out_dir = Path(args.output) if args.output else default_output_dir(args, "-generations")
    spec, config = E.resolve_spec(args.spec, config)
    R.check_output_dir(out_dir, overwrite=args.overwrite)
    suites = E.load_suites(config)
    mut = E.build_model(spec, config)
    with stage_progress(RichProgress) as progress:
        rows = E.generate_rows(mut, suites, config, progress)
    results = {"schema_version": R.SCHEMA_VERSION, "kind": "generations", "profile": config.profile,
               "model": {"identity": mut.identity}, "config": config.key_dict(),
               "suites": {k: {"version": v.version, "content_hash": v.content_hash} for k, v in suites.items()}}
    path = R.write_run(out_dir, results, rows, overwrite=args.overwrite)
    console().print(f"{len(rows)} generations written to {path}")
    return 0


def run_rejudge(args: argparse.Namespace) -> int:
    from benchmark.evaluation.rejudge import rejudge_run

    out_dir = Path(args.output) if args.output else Path(f"{args.run_dir.rstrip('/')}-{args.judge}")
    path, results = rejudge_run(args.run_dir, args.judge, judge_options(args), out_dir,
                                overwrite=args.overwrite)
    if args.json:
        print_json(results)
    else:
        print_summary(results, path, None)
    return 0


def print_summary(results: dict[str, Any], path: Path, seconds: float | None) -> None:
    """The run as people read it: every figure labelled from the judge's measure (results.json keeps the keys)."""
    from rich.table import Table

    from benchmark.evaluation.results import results_measure

    out = console()
    measure = results_measure(results, path)
    judge = results.get("judge") or {}
    refs = results.get("references", {})
    table = Table(title=f"organism-bench: {results['mitigation'].get('name')} on {results['profile']}",
                  title_justify="left")
    table.add_column("metric")
    table.add_column("this run")
    for stage in ("m0", "m1"):
        if stage in refs:
            table.add_column(f"{stage.upper()} reference")
    for name, est in results["metrics"].items():
        table.add_row(measure.label(name), estimate(est),
                      *(estimate(refs[s]["metrics"].get(name)) for s in ("m0", "m1") if s in refs))
    out.print(table)
    out.print(f"judge {judge.get('name', '?')} measures {measure.noun}: positive ({measure.positive}) = "
              f"{measure.description}")
    scores = results.get("scores") or {}
    if scores:
        st = Table(title="score against M1", title_justify="left")
        st.add_column("score")
        st.add_column("value [95% CI]")
        for k in ("harm_reduction", "capability_kept", "over_refusal_increase", "composite"):
            if k in scores:
                st.add_row(measure.label(k), estimate(scores[k], pct=k != "composite"))
        out.print(st)
    fails = results.get("judge", {}).get("failures", {})
    if fails.get("flagged"):
        out.print(f"[bold red]judge failures: {fails['n_failed']} of {fails['n']} (over 1%): rates are flagged[/]")
    sources = {"this run": (results.get("run") or {}).get("generation_sources") or {},
               **{f"{k.upper()} reference": v.get("generation_sources") or {} for k, v in refs.items()}}
    if any(sources.values()):
        out.print("generations: " + "; ".join(f"{who} " + ", ".join(f"{n} {src}" for src, n in counts.items())
                                             for who, counts in sources.items() if counts))
    stages = results.get("run", {}).get("stage_seconds", {})
    if stages:
        out.print("time per stage: " + ", ".join(f"{k} {v:.1f}s" for k, v in stages.items()))
    out.print(f"run written to {path}" + (f" in {seconds:.0f}s" if seconds else ""))
