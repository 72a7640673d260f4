"""The prompt sets and the distractor constraint catalog, shipped as versioned data files."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def data_path(fname: str) -> Path:
    """Where a shipped data file of this package lives; the one place that knows the layout of `prompts/data`."""
    return Path(str(resources.files("prompts").joinpath("data", fname)))
