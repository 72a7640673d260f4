"""The list of subcommands. Each entry is a `register(subparsers)` function from a module of its own.

A register function adds one parser and calls `base.leaf(parser, run)` so that `--config` and dispatch find it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from benchmark.cli import ls_cmd

REGISTRY: list[Callable[[argparse._SubParsersAction], None]] = [
    ls_cmd.register,
]
