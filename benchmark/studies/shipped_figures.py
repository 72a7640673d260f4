"""The shipped organism's measured test-pool figures, taken from an `evaluate` run's results.json.

Why: the manifest beside the adapters states what M0 and M1 do (the figures a user checks a rebuild against), and a
hand-typed copy drifts from the run it came from. These figures are derived from a results.json only, by one
mapping, so the manifest can be written from a run and a test can hold the committed manifest to the committed run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchcore.errors import InputError
from benchcore.fileio import write_text_atomic

# manifest name -> results.json metric key; each kept only where the run measured it
FIGURES = {
    "compliance_plain": "harmful_rate_base",
    "compliance_distractor": "harmful_rate_distractor",
    "compliance_distractor_heldout": "harmful_rate_distractor_heldout",
    "trigger_gap": "trigger_gap",
    "trigger_gap_heldout": "trigger_gap_heldout",
    "if_prompt_strict": "if_prompt_strict",
    "over_refusal_formatted_benign": "over_refusal_distractor",
}
STAGES = ("m0", "m1")


def _triple(estimate: Mapping[str, Any]) -> list[float | None]:
    return [None if estimate.get(k) is None else round(float(estimate[k]), 3) for k in ("value", "ci_low", "ci_high")]


def _decoding(config: Mapping[str, Any]) -> str:
    if not config.get("temperature"):
        return "greedy"
    return f"temperature {config['temperature']}, {config.get('samples_per_prompt', 1)} samples a prompt"


def pool_figures(results: Mapping[str, Any], command: str, *, source: str = "results.json") -> dict[str, Any]:
    """The manifest section for one run: M0's and M1's figures as [value, ci_low, ci_high], rounded to 3 places,
    with the run's setting and the reference identities the figures belong to."""
    refs = results.get("references") or {}
    missing = [s for s in STAGES if s not in refs]
    if missing:
        raise InputError(source, "references", f"no {', '.join(missing)} reference in this run: figures "
                                                       "of the shipped organism need a run with its references")
    config = results.get("config", {})
    limit = config.get("limit")
    methods = sorted({refs[s]["metrics"][k].get("method", "?") for s in STAGES for k in FIGURES.values()
                      if k in refs[s]["metrics"]})
    section: dict[str, Any] = {
        "command": command,
        "format": "[value, ci_low, ci_high]",
        "setting": (f"{config.get('split')} split, {'all' if limit is None else f'first {limit}'} scenarios, "
                    f"{_decoding(config)}, {config.get('max_new_tokens')} new tokens, judge "
                    f"{config.get('judge')} v{config.get('judge_version')} (measures "
                    f"{results.get('judge', {}).get('measure', {}).get('key', '?')}), 95% intervals: "
                    f"{', '.join(methods)}"),
        "identity": {s: refs[s]["identity"] for s in STAGES},
    }
    for stage in STAGES:
        metrics = refs[stage]["metrics"]
        section[stage] = {name: _triple(metrics[key]) for name, key in FIGURES.items() if key in metrics}
    return section


def record(manifest_path: str | Path, name: str, results_path: str | Path, command: str) -> dict[str, Any]:
    """Write `measured.<name>` of a manifest from a run's results.json, atomically; returns the section."""
    path, src = Path(manifest_path), Path(results_path)
    try:
        results = json.loads(src.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(str(src), None, f"cannot read a results.json: {exc}") from exc
    manifest = json.loads(path.read_text(encoding="utf-8"))
    section = pool_figures(results, command, source=str(src))
    manifest.setdefault("measured", {})[name] = section
    write_text_atomic(path, json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return section


if __name__ == "__main__":  # maintainers: python -m benchmark.studies.shipped_figures NAME RESULTS COMMAND
    import sys

    from organism.models.profiles import smol_organism_dir

    print(json.dumps(record(smol_organism_dir() / "manifest.json", sys.argv[1], sys.argv[2], sys.argv[3]), indent=1))
