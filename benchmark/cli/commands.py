"""The list of subcommands. Each entry is a `register(subparsers)` function from a module of its own.

A register function adds one parser and calls `base.leaf(parser, run)` so that `--config` and dispatch find it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from benchmark.cli import evaluate_cmd, judge_cmd, ls_cmd, organism_cmd, validate_cmd
from benchmark.cli import hub_cmd, leaderboard_cmd
from benchmark.cli import attribute_cmd, capability_cmd, discover_cmd
from benchmark.cli import steer_cmd
from benchmark.cli import causal_cmd, probe_cmd, reference_cmd

REGISTRY: list[Callable[[argparse._SubParsersAction], None]] = [
    ls_cmd.register,
    evaluate_cmd.register,
    judge_cmd.register,
    organism_cmd.register,
    validate_cmd.register,
    leaderboard_cmd.register,
    hub_cmd.register,
    attribute_cmd.register,
    capability_cmd.register,
    steer_cmd.register,
    discover_cmd.register,
    causal_cmd.register,
    probe_cmd.register,
    reference_cmd.register,
]
