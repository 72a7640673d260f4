"""Grading mitigations: specs, generation, judges, statistics, scoring, results and the CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("organism-bench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
