"""Shared test set-up: every cache goes to a per-session temp dir, and nothing reaches the Hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read by huggingface_hub at import time: set before any import of it
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.fixtures_models import smol_session  # noqa: E402,F401  (session-scoped: the real model, converted once)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Caches under a session temp dir unless the developer points ORGANISM_BENCH_CACHE somewhere on purpose."""
    if "ORGANISM_BENCH_CACHE" not in os.environ:
        os.environ["ORGANISM_BENCH_CACHE"] = str(tmp_path_factory.mktemp("organism-bench-cache"))
    return Path(os.environ["ORGANISM_BENCH_CACHE"])


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core runner OpenMP threads contend badly.
    Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
