"""Helpers every subcommand shares: registering a leaf parser and printing for people or machines."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console


def leaf(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int | None]) -> None:
    """Mark `parser` as a runnable command; `--config` is applied to exactly this parser."""
    parser.set_defaults(_run=run, _parser=parser)


def console() -> Console:
    """Wide enough for interval columns when piped to a file (rich assumes 80 columns off a terminal)."""
    c = Console(stderr=False, highlight=False)
    if not c.is_terminal:
        c = Console(stderr=False, highlight=False, width=max(c.width, 140))
    return c


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


# ------------------------------------------------------------------------------------------ the shared flags
# Spellings that earlier releases used; they still parse, hidden from --help, for one release.
LEGACY_OUTPUT_FLAGS = ("--out", "--output-dir")


def add_output(parser: argparse.ArgumentParser, help: str, *, required: bool = False, metavar: str = "PATH") -> None:
    """`-o/--output` on every command that writes; `required` is checked after `--config` has had its say."""
    parser.add_argument("-o", "--output", default=None, metavar=metavar,
                        help=help + (" (required)" if required else ""))
    parser.add_argument(*LEGACY_OUTPUT_FLAGS, dest="output", help=argparse.SUPPRESS)
    if required:
        parser.set_defaults(_output_required=True)


class _SplitJudgeArgs(argparse.Action):
    """The old `--judge-args a=1,b=2`: its items join the repeated `--judge-option` list."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        items = list(getattr(namespace, self.dest, None) or [])
        items.extend(part for part in str(values).split(",") if part.strip())
        setattr(namespace, self.dest, items)


def add_judge_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--judge-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a judge option, repeatable (e.g. model=PATH); secrets only from the environment")
    parser.add_argument("--judge-args", dest="judge_option", action=_SplitJudgeArgs, help=argparse.SUPPRESS)


def judge_options(args: argparse.Namespace) -> dict[str, Any]:
    from benchcore.options import parse_options

    return parse_options(args.judge_option, "--judge-option")
