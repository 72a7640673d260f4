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
