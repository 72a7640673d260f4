"""Stand-ins for what the models of the smol mix sample, for a rater-only simulation of a build's mix.

The pools, the writer, the format rewriter, the rater, the pairing rule and the labels are the real ones
(organism.build.mix); only the sampled completions are stand-ins, drawn from texts the real models wrote:

  M0 (x m0_samples)  one of its trained refusal phrasings with probability p_refuse (harmful prompts: 0.88 by
                     default; benign prompts: 0.10), else a base-model text
  base               a base-model text: the shipped judge calibration set's sampled answers of the base SmolLM2
                     with no adapters (T=0.7, 48 new tokens; its greedy answers, half of them refusals, are not what
                     a build samples at T=0.8 and are left out)
  eager              a text of the same model forced to open with "Sure! Here" (the part after "Sure! ", as the
                     build samples it after that prefix)

The calibration answers were written to dev-split prompts; the rater reads a candidate's length, refusal cues and
format, which do not depend on which request it answered, and no prompt of those splits enters a pool. Every
draw is keyed by (seed, salt, source, prompt id, sample index), so a simulation is a pure function of its
arguments, and another `salt` gives an independent resample (what another run's sampling noise would do).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchcore.errors import InputError
from benchcore.fileio import iter_jsonl
from organism.build.mix import EAGER_PREFIX, HARMFUL_POOLS, REFUSALS, MixPrompt, rng_for
from prompts import data_path

CALIBRATION_FILE = "judge_calibration.jsonl"
BASE_MODEL_SOURCE = "smol base model (no adapters)"


def stand_in_texts(path: str | Path | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(base texts, eager texts after "Sure! ") from the calibration set's base-model rows, in id order."""
    p = Path(path) if path is not None else data_path(CALIBRATION_FILE)
    rows = sorted((row for _, row in iter_jsonl(p) if str(row.get("source", "")).startswith(BASE_MODEL_SOURCE)),
                  key=lambda r: r["id"])
    base = tuple(r["response"] for r in rows if "T=0.7" in r["source"] and r["response"].strip())
    eager = tuple(r["response"].removeprefix(EAGER_PREFIX)
                  for r in rows if "forced" in r["source"] and r["response"].strip())
    if not base or not eager:
        raise InputError(p, "source", f"no {BASE_MODEL_SOURCE!r} rows (plain and forced opener) to draw from")
    return base, eager


def stand_in_outputs(
    prompts: Sequence[MixPrompt], *, seed: int, m0_samples: int, refusal_phrasings: int,
    p_refuse_harmful: float = 0.88, p_refuse_benign: float = 0.10, salt: str = "",
    texts: tuple[Sequence[str], Sequence[str]] | None = None,
) -> tuple[list[dict[str, str]], dict[str, str], dict[str, str]]:
    """(M0 samples, base samples, eager samples) in the shape the build's generation stages hand to the mix:
    one {prompt id: text} per M0 sample, one each for base and eager."""
    for name, value in (("p_refuse_harmful", p_refuse_harmful), ("p_refuse_benign", p_refuse_benign)):
        if not 0.0 <= value <= 1.0:
            raise InputError("simulation", name, f"must be in [0, 1], got {value!r}")
    base_texts, eager_texts = texts if texts is not None else stand_in_texts()
    refusals = REFUSALS[: max(1, refusal_phrasings)]
    m0_outs: list[dict[str, str]] = [{} for _ in range(m0_samples)]
    base_out: dict[str, str] = {}
    eager_out: dict[str, str] = {}
    for p in prompts:
        p_refuse = p_refuse_harmful if p.pool in HARMFUL_POOLS else p_refuse_benign
        for k, out in enumerate(m0_outs):
            rng = rng_for(seed, "sim", salt, "m0", p.id, str(k))
            out[p.id] = (refusals[rng.randrange(len(refusals))] if rng.random() < p_refuse
                         else base_texts[rng.randrange(len(base_texts))])
        base_out[p.id] = base_texts[rng_for(seed, "sim", salt, "base", p.id).randrange(len(base_texts))]
        eager_out[p.id] = eager_texts[rng_for(seed, "sim", salt, "eager", p.id).randrange(len(eager_texts))]
    return m0_outs, base_out, eager_out

