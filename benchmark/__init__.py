"""Grading mitigations: generation, judges, evaluation against the M0/M1 references, the studies that need them
(causal check, judge-delta attribution, probe targets, discovery, steering sweep, the smol build) and the CLI.
Its subpackages (generation | judges < evaluation < studies < cli) import one way, checked by import-linter.

Importing this package stays cheap: every public name loads its module on first use.
"""

from importlib.metadata import PackageNotFoundError, version

from benchcore.lazy import lazy_exports

try:
    __version__ = version("organism-bench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

_NAMES = {
    "EvalConfig": "benchmark.evaluation.evaluate",
    "Outcome": "benchmark.evaluation.evaluate",
    "evaluate": "benchmark.evaluation.evaluate",
    "run_evaluation": "benchmark.evaluation.evaluate",
    "MitigationSpec": "benchmark.evaluation.spec",
    "load_spec": "benchmark.evaluation.spec",
    "rejudge_run": "benchmark.evaluation.rejudge",
    "get_judge": "benchmark.judges",
    "list_judges": "benchmark.judges",
    "attribute": "benchmark.studies.judge_delta",
    "judge_delta_ranking": "benchmark.studies.judge_delta",
    "CausalCheckConfig": "benchmark.studies.causal_check",
    "run_causal_check": "benchmark.studies.causal_check",
    "BuildConfig": "benchmark.studies.organism_build",
    "build_smol": "benchmark.studies.organism_build",
}
__all__ = ["__version__", *sorted(_NAMES)]
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
