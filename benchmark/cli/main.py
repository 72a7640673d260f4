"""Entry point: builds the parser from the subcommand modules, applies `--config`, maps errors to exit codes.

Exit codes: 0 success, 2 bad input (one line naming the file and field), 1 internal error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from benchmark import __version__
from benchmark.cli import config as cli_config
from benchmark.cli import commands
from benchcore.errors import InputError


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are a single line like every other bad-input error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="organism-bench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"organism-bench {__version__}")
    parser.add_argument("--config", metavar="FILE", help="YAML/JSON file whose keys mirror the flags (flags win)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for register in commands.REGISTRY:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        if args.config:
            leaf = args._parser
            cli_config.apply_config(leaf, cli_config.read_config(args.config), args.config)
            args = parser.parse_args(argv)
        if getattr(args, "_output_required", False) and not args.output:
            args._parser.error("the following arguments are required: -o/--output")
        return int(args._run(args) or 0)
    except InputError as exc:
        print(f"organism-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("organism-bench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: say it is ours, not the user's
        if os.environ.get("ORGANISM_BENCH_DEBUG"):
            raise
        print(f"organism-bench: internal error: {type(exc).__name__}: {exc} "
              "(set ORGANISM_BENCH_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
