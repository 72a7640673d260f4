"""`organism-bench leaderboard build [RUN_DIR...] -o SITE`: a static, self-contained HTML leaderboard.

It starts full: the reference grid shipped with the package (M0, M1, the oracle and every attribution method on the
smol organism; `--reference FILE` reads a rebuilt bundle instead, `--no-reference` leaves it out) and the paper's
published OLMo 2 7B rows (`--no-reported` leaves them out). Run directories (or folders holding them), a results
dataset on the Hub (`--from-hub`), or both join them as submissions. Malformed result files are skipped with a
warning on stderr naming them; the build goes on. The same inputs give the same bytes:
the build time is printed only when given (`--build-time`, or SOURCE_DATE_EPOCH).
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console

from benchmark.cli.base import add_output, console, leaf, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("leaderboard", help="build the static HTML leaderboard from result directories")
    group = p.add_subparsers(dest="leaderboard_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(_run=lambda args: _help(p), _parser=p)

    b = group.add_parser("build", help="render run directories (and/or a Hub results dataset) to a static site")
    b.add_argument("runs", nargs="*", metavar="RUN_DIR",
                   help="run directories, or folders searched for them (none: the shipped rows alone)")
    add_output(b, "site folder (replaced whole)", required=True, metavar="DIR")
    b.add_argument("--from-hub", default=None, metavar="REPO", help="also read a results dataset repo on the Hub")
    b.add_argument("--revision", default=None, help="revision of the --from-hub dataset (default main)")
    b.add_argument("--build-time", default=None, metavar="TEXT",
                   help="build time to print on the site (default: SOURCE_DATE_EPOCH if set, else none)")
    b.add_argument("--no-reported", action="store_true",
                   help="leave out the paper's published olmo2-7b numbers")
    b.add_argument("--reference", default=None, metavar="FILE",
                   help="read this reference-grid bundle (from `organism-bench reference build`) instead of the "
                        "shipped one")
    b.add_argument("--no-reference", action="store_true", help="leave out the shipped reference grid rows")
    b.add_argument("--json", action="store_true", help="machine-readable output")
    leaf(b, run_build)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def run_build(args: argparse.Namespace) -> int:
    from benchcore.errors import InputError
    from leaderboard import site
    from leaderboard.entries import collect, summary_rows

    t0 = time.perf_counter()
    paths = list(args.runs)
    if args.from_hub:
        from leaderboard.hub import download_results

        paths.append(download_results(args.from_hub, args.revision))
    elif args.revision:
        raise InputError("--revision", None, "only meaningful with --from-hub")
    if args.reference and args.no_reference:
        raise InputError("--reference", None, "not with --no-reference")
    reference = args.reference or not args.no_reference
    col = collect(paths, reported=not args.no_reported, reference=reference)
    if not paths and not col.entries:
        raise InputError("leaderboard build", "RUN_DIR", "nothing to show: give a run directory or --from-hub, or "
                         "leave the reference or reported rows in")
    report = site.build_site(col.entries, args.output, build_time=site.build_time_text(args.build_time),
                             skipped=col.skipped)
    err = Console(stderr=True, highlight=False)
    for s in col.skipped:
        err.print(f"[yellow]warning:[/yellow] skipped {s.path}: {s.reason}", markup=True, soft_wrap=True)
    for note in col.notes:
        err.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    seconds = time.perf_counter() - t0
    measures = measures_by_profile(col.entries)
    if args.json:
        print_json({"output": str(report.out_dir), "pages": report.pages, "entries": report.entries,
                    "bytes": report.total_bytes, "index_bytes": report.index_bytes, "seconds": round(seconds, 3),
                    "measures": measures, "skipped": [{"path": s.path, "reason": s.reason} for s in col.skipped],
                    "notes": col.notes, "reference_bundles": col.bundles, "rows": summary_rows(col.entries)})
        return 0
    console().print(f"wrote {report.out_dir / 'index.html'}: {report.entries} rows, {report.pages} pages, "
                    f"{report.total_bytes / 1024:.0f} KiB in {seconds:.2f} s"
                    + (f"; {len(col.skipped)} skipped (see warnings)" if col.skipped else ""))
    console().print("tables by judge measure: " + "; ".join(f"{p}: {', '.join(m)}" for p, m in measures.items()))
    return 0


def measures_by_profile(entries: list) -> dict[str, list[str]]:
    """Profile -> the judge measures its rows were graded by (one table each), so the build says what it ranked."""
    out: dict[str, set[str]] = {}
    for e in entries:
        out.setdefault(e.profile, set()).add(e.measure)
    return {p: sorted(m) for p, m in sorted(out.items())}
