"""`organism-bench organism ...`: work with the organisms themselves.

`info` loads a stage and prints what was loaded and how long it took (the way to check a cache or a download);
`convert` builds the smol profile's safetensors copy of the embedded GGUF; `build` builds the smol organism (M0, the
preference mix, M1) with benchmark.studies.organism_build and, with --install, puts the adapters where load_organism finds them;
`health` puts base, M0 and M1 side by side on knowledge, instruction following, benign-answer NLL under the base and
regurgitation of the preference mix, with the project's pass/fail thresholds (benchmark.studies.organism_health).
"""

from __future__ import annotations

import argparse
import time

from benchmark.cli.base import add_output, console, leaf, print_json

STAGE_CHOICES = ("base", "m0", "m1")
DTYPE_CHOICES = ("bfloat16", "float32", "float16")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("organism", help="load, inspect and convert the organisms")
    group = p.add_subparsers(dest="organism_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(_run=lambda args: _help(p), _parser=p)

    info = group.add_parser("info", help="load a profile's stage and print its load record and load time")
    info.add_argument("--profile", required=True, help="profile name (see `organism-bench ls --profiles`)")
    info.add_argument("--stage", default="m1", choices=STAGE_CHOICES, help="which checkpoint (default m1)")
    info.add_argument("--revision", default=None, help="Hub revision overriding the profile's pin")
    info.add_argument("--adapter", default=None, help="a local PEFT adapter directory merged on top")
    info.add_argument("--dtype", default="bfloat16", choices=DTYPE_CHOICES)
    info.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    leaf(info, run_info)

    convert = group.add_parser("convert", help="build the smol profile's safetensors copy and print its path")
    convert.add_argument("--json", action="store_true", help="machine-readable output")
    leaf(convert, run_convert)

    build = group.add_parser("build", help="build the smol organism: M0 (SFT), the preference mix, M1 (DPO)")
    build.add_argument("--profile", default="smol", help="profile to build (only smol is built by the package)")
    build.add_argument("--config-preset", default="full", choices=("small", "full"),
                       help="sizes and hyper-parameters (small = a reduced run; default full)")
    add_output(build, "build folder (default: the cache dir's builds/smol-PRESET)", metavar="DIR")
    build.add_argument("--seed", type=int, default=None, help="override the preset's seed")
    build.add_argument("--install", action="store_true",
                       help="copy the adapters into organism/adapters/smol/ where load_organism picks them up")
    build.add_argument("--json", action="store_true", help="machine-readable output (the manifest)")
    leaf(build, run_build)

    health = group.add_parser("health", help="base, M0 and M1 side by side: knowledge, instruction following, "
                                             "benign-answer NLL under the base, regurgitation of the mix")
    health.add_argument("--profile", required=True, help="profile name (see `organism-bench ls --profiles`)")
    health.add_argument("--split", default="test", help="dev or test (default test)")
    health.add_argument("--limit", type=int, default=None, metavar="N",
                        help="first N scenarios of each suite (default: all)")
    health.add_argument("--max-new-tokens", type=int, default=96,
                        help="greedy answer length (default 96, as `evaluate`: the two share cached answers)")
    health.add_argument("--seed", type=int, default=0, help="bootstrap seed (decoding is greedy)")
    health.add_argument("--batch-size", default="auto", help="generation batch size or 'auto'")
    health.add_argument("--dtype", default="bfloat16", choices=DTYPE_CHOICES)
    health.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    health.add_argument("--mix", default=None, metavar="PATH",
                        help="preference mix to check regurgitation against (default: the profile's installed mix)")
    health.add_argument("--ngram-words", type=int, default=None, metavar="N",
                        help="words in a run that counts as regurgitated (default 12)")
    add_output(health, "JSON file to write (atomically)", metavar="FILE")
    health.add_argument("--json", action="store_true", help="print the JSON instead of the tables")
    leaf(health, run_health)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def run_info(args: argparse.Namespace) -> int:
    from organism.models.loading import load_organism

    start = time.perf_counter()
    loaded = load_organism(args.profile, args.stage, dtype=args.dtype, device=args.device, revision=args.revision,
                           adapter=args.adapter)
    seconds = time.perf_counter() - start
    data = loaded.record.to_dict()
    data["load_seconds"] = round(seconds, 3)
    data["parameters"] = sum(p.numel() for p in loaded.model.parameters())
    if args.json:
        print_json(data)
        return 0
    out = console()
    for key, value in data.items():
        if key == "notes":
            continue
        out.print(f"[bold]{key}[/bold]: {'' if value is None else value}")
    for note in data["notes"]:
        out.print(f"note: {note}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from organism.models import smol

    start = time.perf_counter()
    path = smol.ensure_copy()
    seconds = time.perf_counter() - start
    if args.json:
        print_json({"path": str(path), "seconds": round(seconds, 3), **smol.copy_source(path)})
    else:
        print(path)
    return 0


def run_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.studies.organism_build import BuildConfig, build_smol, install_adapters
    from benchcore.errors import InputError
    from benchcore.paths import cache_dir

    if args.profile != "smol":
        raise InputError(None, "profile", f"only the smol organism is built by the package, not {args.profile!r}")
    overrides = {} if args.seed is None else {"seed": args.seed}
    config = BuildConfig.preset_config(args.config_preset, **overrides)
    out = Path(args.output) if args.output else cache_dir() / "builds" / f"smol-{args.config_preset}"
    start = time.perf_counter()

    def say(stage: str, message: str) -> None:
        if not args.json:
            print(f"[{time.perf_counter() - start:8.1f} s] {stage}: {message}", flush=True)

    manifest = build_smol(config, out, progress=say)
    installed = [str(p) for p in install_adapters(out)] if args.install else []
    if args.json:
        print_json({**manifest.to_dict(), "installed": installed})
        return 0
    out_console = console()
    out_console.print(f"[bold]build[/bold]: {out}")
    out_console.print(f"mix: {manifest.mix['pairs']} pairs, {manifest.mix['contaminated']} contaminated "
                      f"({manifest.mix['contaminated_share']:.1%})")
    for stage, info in manifest.adapters.items():
        out_console.print(f"{stage}: {info['path']} ({info['bytes']} bytes, sha256 {info['safetensors_sha256'][:16]})")
    for stage, rates in manifest.rates.items():
        out_console.print(f"{stage} rates: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                        for k, v in rates.items()))
    for path in installed:
        out_console.print(f"installed: {path}")
    return 0


def run_health(args: argparse.Namespace) -> int:
    from benchcore.errors import InputError
    from benchcore.formatting import number
    from benchmark.studies import organism_health as H

    batch = args.batch_size
    if batch != "auto":
        try:
            batch = int(batch)
        except ValueError:
            raise InputError("command line", "batch_size", f"must be an integer or 'auto', got {batch!r}") from None
    ngram = H.NGRAM_WORDS if args.ngram_words is None else args.ngram_words
    settings = {"split": args.split, "limit": args.limit, "max_new_tokens": args.max_new_tokens, "seed": args.seed,
                "batch_size": batch, "dtype": args.dtype, "device": args.device, "mix": args.mix,
                "ngram_words": ngram}
    command = H.health_command(args.profile, **settings, output=args.output)
    if args.json:
        report = H.run_health(args.profile, **settings, output=args.output, command=command)
        print_json(report.to_dict())
        return 0
    from benchmark.cli.progress import stage_progress

    with stage_progress() as bar:
        report = H.run_health(args.profile, **settings, output=args.output, command=command, progress=bar)
    from rich.table import Table

    out = console()
    n = {name: info["n_records"] for name, info in report.suites.items()}
    table = Table(title=f"organism health: {report.profile}, split {report.split}, {n['benign-control']} benign "
                        f"requests, {n['ifeval-lite']} ifeval-lite tasks, {n['knowledge-mcq']} knowledge questions "
                        "(95% CI)")
    table.add_column("metric")
    for stage in H.STAGES:
        table.add_column(f"{stage} ({report.stages[stage]['kind']})", justify="right")
    for row in report.table_rows():
        table.add_row(*row)
    out.print(table)
    checks = Table(title="thresholds (read on M1's point estimates)")
    for col in ("check", "statistic", "value [95% CI]", "threshold", "pass/fail", "note"):
        checks.add_column(col)
    for c in report.checks:
        percent = c.name != "benign_nll_ratio"
        value = "-" if c.value is None else H.format_estimate(
            {"value": c.value, "ci_low": c.ci_low, "ci_high": c.ci_high}, percent=percent)
        style = {"pass": "green", "FAIL": "bold red"}.get(c.status, "yellow")
        checks.add_row(c.name, c.statistic, value, c.threshold, f"[{style}]{c.status}[/{style}]", c.note)
    out.print(checks)
    out.print(f"[bold]verdict[/bold]: {report.verdict}")
    for stage, info in report.stages.items():
        weights = info["adapter_path"] or f"{info['model_id']}@{info['revision']}"
        out.print(f"{stage}: {info['kind']} ({weights}; adapter sha256 {(info['adapter_sha256'] or 'none')[:16]})")
    out.print(f"regurgitation: {report.regurgitation['note']}")
    for note in report.notes:
        out.print(f"note: {note}")
    stages = report.timings_s.get("stages", {})
    parts = []
    for stage, secs in stages.items():
        if "reused_from" in secs:
            parts.append(f"{stage} = {secs['reused_from']} (same weights)")
        else:
            parts.append(f"{stage} load {number(secs['load'], 1)} s, generate {number(secs['generate'], 1)} s "
                         f"({secs['cached_generations']} cached), knowledge {number(secs['knowledge'], 1)} s")
    out.print(f"timings: total {number(report.timings_s['total'], 1)} s; " + "; ".join(parts)
              + f"; NLL {number(report.timings_s.get('nll under base'), 1)} s")
    out.print(f"command: {report.command}")
    if args.output:
        out.print(f"wrote {args.output}")
    return 0
