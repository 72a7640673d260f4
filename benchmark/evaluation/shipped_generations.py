"""Export the organism's M0 and M1 generations on the benchmark's prompts, to ship beside its adapters.

Why: M0 and M1 are fixed, so every user's first `evaluate` would otherwise spend most of its time regenerating
the same two references (about 13 minutes each on 2 CPU cores in float32). Shipped, they are read-only layers
under the generation cache (benchmark.generation.cache): a key matches only for the same weights, dtype, rendered
prompt and decoding, so any other setting, or `--no-shipped-generations`, computes them on the machine, and every
run says how many of its generations it computed, read from the cache, or read from the shipped files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from benchmark.evaluation.evaluate import GENERATIVE, EvalConfig, Progress, build_model, generate_rows, load_suites
from benchmark.generation.cache import GenerationCache, write_shipped


def export_reference_generations(config: EvalConfig, folder: str | Path, *, stages: Sequence[str] = ("m0", "m1"),
                                 progress: Progress | None = None) -> dict[str, int]:
    """Write `folder/generations/<stage>.jsonl.gz` with the stage's generations under `config` (generating the
    ones this machine's cache lacks), merged with what the file already held. Returns entries per file."""
    from benchcore.paths import cache_dir

    generative = dataclasses.replace(config, suites=tuple(s for s in config.suites if s in GENERATIVE),
                                     shipped_generations=False)
    suites = load_suites(generative)
    counts = {}
    for stage in stages:
        target = Path(folder) / "generations" / f"{stage}.jsonl.gz"
        mut = build_model(None, generative, stage)
        mut.load()
        try:
            rows = generate_rows(mut, suites, generative, progress)
        finally:
            mut.close()
        held = GenerationCache(cache_dir() / "generations", shipped=[target] if target.is_file() else [])
        keys = {r["generation_key"] for r in rows} | {k for k in held.keys() if held.source(k) == "shipped"}
        counts[stage] = write_shipped(target, ((k, held.get(k)) for k in keys))
    return counts
