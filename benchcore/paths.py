"""Where the package keeps what it computes once and reuses (converted models, generations, activations).

One root for every cache so that a user can move or wipe it in one place and tests can point it at a temp dir.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "ORGANISM_BENCH_CACHE"


def cache_dir() -> Path:
    """The cache root: $ORGANISM_BENCH_CACHE if set, else the platform's user cache dir. Not created here."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("organism-bench"))
