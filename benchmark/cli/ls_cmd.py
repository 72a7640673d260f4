"""`organism-bench ls`: what the package knows about (profiles, suites, judges, mitigation kinds)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib import import_module

from rich.table import Table

from benchmark.cli.base import console, leaf, print_json

# section name -> "module:function" returning a list of flat dict rows; imported lazily so `ls` stays fast.
SECTIONS: dict[str, str] = {
    "profiles": "organism.models.profiles:ls_rows",
    "suites": "prompts.suites:ls_rows",
    "judges": "benchmark.judges:ls_rows",
    "mitigations": "benchmark.evaluation.spec:ls_rows",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ls", help="list profiles, suites, judges and mitigation kinds")
    for name in SECTIONS:
        p.add_argument(f"--{name}", action="store_true", help=f"only the {name}")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    leaf(p, run)


def _provider(name: str) -> Callable[[], list[dict]]:
    module, func = SECTIONS[name].split(":")
    return getattr(import_module(module), func)


def collect(names: list[str] | None = None) -> dict[str, list[dict]]:
    """The rows of each section, for Python callers and for `--json`."""
    return {name: _provider(name)() for name in (names or list(SECTIONS))}


def run(args: argparse.Namespace) -> int:
    chosen = [n for n in SECTIONS if getattr(args, n)] or None
    data = collect(chosen)
    if args.json:
        print_json(data)
        return 0
    out = console()
    for name, rows in data.items():
        table = Table(title=name, title_justify="left")
        columns = list(dict.fromkeys(k for row in rows for k in row))
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
        out.print(table)
    return 0
