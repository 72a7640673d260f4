"""The prompt sets and the distractor constraint catalog, shipped as versioned data files; the refusal cues; and a
pulled benchmark revision from the Hub. The lowest layer of the project but for `benchcore`.

Importing this package stays cheap: every public name loads its module on first use.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from benchcore.lazy import lazy_exports

_NAMES = {
    "load_suite": "prompts.suites",
    "get_constraint": "prompts.constraints",
    "verify_all": "prompts.constraints",
    "apply_all": "prompts.constraints",
    "is_refusal": "prompts.refusal",
    "complies": "prompts.refusal",
    "pull": "prompts.remote",
    "benchmark_folder": "prompts.remote",
}
__all__ = ["data_path", *sorted(_NAMES)]
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)


def data_path(fname: str) -> Path:
    """Where a shipped data file of this package lives; the one place that knows the layout of `prompts/data`."""
    return Path(str(resources.files("prompts").joinpath("data", fname)))
