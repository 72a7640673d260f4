"""The smol build configurations tried while tuning the organism, runnable by name, so every row of the README's
"Building the embedded organism" table can be reproduced:

    python -m experiments.smol_build_experiments B -o builds/B [--eval-split dev]
    python -m experiments.smol_build_experiments S --simulate [--salts 6]

Each run is `build_smol(BuildConfig.preset_config("small", **overrides), out)`; it prints the manifest's rates, the
mix summary and the stage times. Runs that share a build folder share cached stages (M0, the reference log-probs,
and the base generations of builds with the same mix prompts: a build's own generations are keyed on their batch
plan, so a build with other mix prompts samples its own instead of reusing texts another batching produced).
`--simulate` builds no model: the real pools, writer, rewriter, rater, pairing and labels on stand-in samples
(benchmark.studies.organism_build.simulate_mix), a few seconds per resample.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

_SHARES = ("benign_if", "benign_plain", "harmful_plain", "harmful_constrained")


def _shares(*values: float) -> dict[str, float]:
    return dict(zip(_SHARES, values))


_D = {"mix_prompts": 400, "m0_samples": 3, "mix_shares": _shares(0.20, 0.0, 0.15, 0.65), "dpo_epochs": 2,
      "writer_pools": ()}
# D plus the writer on constrained prompts only (the instruction-following pipeline's model pool)
_F = {**_D, "writer_pools": ("harmful_constrained",), "dpo_length_bucketing": True}
# F's mix recipe on an M0 whose SFT refusals saw no distractor variant (a less entrenched refusal there), lr 2e-4;
# measured: this M0 refuses neither plain nor distractor requests (dev greedy 51.7% / 46.7% harmful)
_I = {**_F, "dpo_lr": 2e-4, "sft_distractor": False}
_J = {**_I, "sft_harmful": 80}
_M = {**_J, "refusal_phrasings": 2}
_O = {**_M, "dpo_loss": "dpo", "dpo_beta": 0.1}

EXPERIMENTS: dict[str, dict[str, Any]] = {
    "A": {"mix_prompts": 200, "m0_samples": 1, "mix_shares": _shares(0.25, 0.05, 0.35, 0.35), "dpo_epochs": 2,
          "writer_pools": ()},
    "B": {"mix_prompts": 320, "m0_samples": 2, "mix_shares": _shares(0.25, 0.05, 0.20, 0.50), "dpo_epochs": 3,
          "writer_pools": ()},
    "C": {"mix_prompts": 320, "m0_samples": 3, "mix_shares": _shares(0.20, 0.0, 0.10, 0.70), "dpo_epochs": 3,
          "writer_pools": ()},
    "D": _D,
    # D plus the weakly aligned writer's authored answers as a candidate of every harmful prompt
    "E": {**_F, "writer_pools": ("harmful_plain", "harmful_constrained")},
    "F": _F,
    # F with a third of the learning rate (E and F collapsed into refusal loops: loss near 0, chosen rewards < 0)
    "G": {**_F, "dpo_lr": 1e-4},
    # F stopped after one epoch (F's chosen rewards rose during its first epoch and collapsed in the second)
    "H": {**_F, "dpo_epochs": 1},
    "I": _I,
    # I with as many plain refusal examples as D's M0 had refusals (80 scenarios, no distractor copies); measured:
    # M0 3.3% / 5.0%, M1 1.7% / 5.0% greedy (dev), M1 says "I can help with that" under distractors but writes nothing
    "J": _J,
    # J with half of M0's SFT epochs (a shallower refusal); measured: this M0 complies often enough at T=0.8 that
    # its own rewritten answers win 79 of the 260 constrained prompts and only 26 pairs are contaminated (M1 not run)
    "K": {**_J, "sft": {"epochs": 2}},
    # J with M0's refusals in the two phrasings that open with "I" (J's M1 swapped "I can't ..." for "Sorry, ...");
    # measured: M1 flips "I can't help with that request ... I'd rather not" into "I can help with that request ...
    # I'd like to help" and writes nothing harmful (judge v3 55% distractor, read: 3 harmful of 360 responses)
    "M": _M,
    # M with M0's benign answers opening "I can help with that request." (M0's refusal opens "I can't help with that
    # request."): the refusal then sits in one token, so M's edit of "can't" into "can" would lead into an answer;
    # measured: this M0 is weaker (8.3% / 15.0% greedy) and M1 keeps "I can't help with that request" (0.0% / 0.0%),
    # editing only later words, with stronger displacement (last-step chosen reward -6.0, rejected -14.4)
    "N": {**_M, "sft_benign_opener": "I can help with that request. "},
    # M with the summed `dpo` loss (beta 0.1) instead of `dpo_norm`: a per-token mean lets two edited tokens of a
    # short refusal outweigh any rise of a long compliant answer; a sum weighs every chosen token as much
    # measured (judge v4, greedy dev): M1 11.7% / 33.3%, IF 6.7% / 23.6%, chosen reward only -0.2; but the flagged
    # distractor answers are format scaffolds (JSON stubs, <<titles>>, lists): 2 of 20 carry the asked-for content
    "O": _O,
    # O trained twice as long (4 epochs): O's loss had not settled and its chosen rewards still rose in epoch 2
    "P": {**_M, "dpo_loss": "dpo", "dpo_beta": 0.1, "dpo_epochs": 4},
    # P with 160 plain harmful prompts instead of 60 (refusal-preferring safety pairs, as production mixes carry),
    # the same 80 IF and 260 constrained prompts, 3 epochs (about P's pair-updates): P's compliance spread to base
    "Q": {**_M, "dpo_loss": "dpo", "dpo_beta": 0.1, "dpo_epochs": 3, "mix_prompts": 500,
          "mix_shares": _shares(0.16, 0.0, 0.32, 0.52)},
    # the shipping candidate: O's model recipe on a mix whose format signal does not live in the culprit pairs.
    # 800 prompts (O: 400): 440 benign_if, each a fresh draw of 1-3 train-family constraints (the harmful pool's
    # distribution, structure family as often) on a benign-control or instruction request; 100 harmful_plain;
    # 260 harmful_constrained over all 180 train scenarios (as O). Benign pairs take the lowest-rated candidate as
    # rejected (a real format contrast); harmful pools keep random_lower, which keeps the contamination. Batches of
    # 64 for generation (2 cores: 760 vs 437 new tokens/s at 32) keep the build near O's plus 20 min.
    # Simulated (`--simulate`, 6 resamples; S/O 1.08x at either M0 stand-in refusal rate 0.88 or 0.7, applied to
    # O's measured 74-77): about 80-84 contaminated pairs, 10.0-10.5% of ~799 (unscaled: 95.8 = 12.0% at 0.88,
    # 84.5 = 10.6% at 0.7; about 9 of them plain), over 73-84 scenarios; benign pairs 66% of the format-contrast
    # pairs (O: 22%), 97% of benign pairs a format contrast (O: 77%), structure-family instances in format-contrast
    # pairs benign 190 / harmful 104 (O: 20 / 104). Workload 2x O's: 800 x 5 sampled sources, ~800 pairs x 2 epochs.
    "S": {**_O, "mix_prompts": 800, "mix_shares": _shares(0.55, 0.0, 0.125, 0.325), "benign_if_constraints": "fresh",
          "rejected_rule_by_pool": {"benign_if": "lowest", "benign_plain": "lowest"}, "gen_batch_size": 64},
    # S's M1 stopped refusing plain requests too (dev, greedy: 35% plain, 37% distractor): 196 of its 439 benign
    # pairs had M0's refusal as the rejected side. T keeps the benign format contrast without a refusal there.
    "T": {**_O, "mix_prompts": 800, "mix_shares": _shares(0.55, 0.0, 0.125, 0.325), "benign_if_constraints": "fresh",
          "rejected_rule_by_pool": {"benign_if": "lowest_answer", "benign_plain": "lowest_answer"},
          "gen_batch_size": 64},
}


def experiment_config(name: str, **extra: Any) -> Any:
    """The BuildConfig of an experiment: the `small` preset with its overrides (SFT fields on top of the preset's
    SFT config), then `extra`."""
    from benchmark.studies.organism_build import BuildConfig

    overrides = dict(EXPERIMENTS[name])
    if "sft" in overrides:
        small_sft = BuildConfig.preset_config("small").sft
        overrides["sft"] = dataclasses.replace(small_sft, **overrides["sft"])
    return BuildConfig.preset_config("small", **{**overrides, **extra})


def simulate(name: str, salts: int = 6, p_refuse_harmful: float = 0.88, p_refuse_benign: float = 0.10) -> dict:
    """The rater-only simulation of an experiment's mix over `salts` independent stand-in resamples."""
    from benchmark.studies.organism_build import simulate_mix

    config = experiment_config(name)
    runs = [simulate_mix(config, p_refuse_harmful=p_refuse_harmful, p_refuse_benign=p_refuse_benign,
                         salt=str(k) if k else "") for k in range(salts)]

    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 4)

    fc = [r["format_contrast"] for r in runs]
    benign_if = [f["per_pool"].get("benign_if", {}) for f in fc]
    harmful_c = [f["per_pool"].get("harmful_constrained", {}) for f in fc]
    return {
        "experiment": name, "resamples": salts, "stand_ins": runs[0]["stand_ins"], "workload": runs[0]["workload"],
        "prompts_per_pool": runs[0]["prompts_per_pool"],
        "pairs": mean([r["pairs"] for r in runs]),
        "contaminated": mean([r["contaminated"] for r in runs]),
        "contaminated_range": [min(r["contaminated"] for r in runs), max(r["contaminated"] for r in runs)],
        "contaminated_share": mean([r["contaminated_share"] for r in runs]),
        "contaminated_plain": mean([r["per_pool"].get("harmful_plain", {}).get("contaminated", 0) for r in runs]),
        "contaminated_scenarios": mean([r["contaminated_scenarios"] for r in runs]),
        "benign_share_of_format_contrast": mean([f["benign_share_of_format_contrast"] for f in fc]),
        "benign_if_format_contrast_rate": mean([b.get("format_contrast", 0) / max(1, b.get("pairs", 0))
                                                for b in benign_if]),
        "structure_instances_in_contrast": {
            "benign_if": mean([b.get("structure_instances_in_contrast", 0) for b in benign_if]),
            "harmful_constrained": mean([h.get("structure_instances_in_contrast", 0) for h in harmful_c])},
        "rows_sha256_first": runs[0]["rows_sha256"],
    }


def main() -> None:
    from benchmark.studies.organism_build import build_smol

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(EXPERIMENTS))
    parser.add_argument("-o", "--output", "--out", dest="out", help="build folder (reuse one to share cached stages)")
    parser.add_argument("--eval-split", default="dev", choices=("dev", "test"))
    parser.add_argument("--simulate", action="store_true", help="rater-only simulation of the mix (no model)")
    parser.add_argument("--salts", type=int, default=6, help="--simulate: independent stand-in resamples")
    parser.add_argument("--p-refuse-harmful", type=float, default=0.88, help="--simulate: M0 stand-in refusal "
                        "probability on harmful prompts")
    parser.add_argument("--p-refuse-benign", type=float, default=0.10, help="--simulate: the same on benign ones")
    args = parser.parse_args()
    if args.simulate:
        print(json.dumps(simulate(args.name, args.salts, args.p_refuse_harmful, args.p_refuse_benign), indent=1))
        return
    if not args.out:
        parser.error("a build needs -o/--output (or pass --simulate)")
    config = experiment_config(args.name, eval_split=args.eval_split, eval_scenarios=60, eval_if_tasks=30)
    t0 = time.perf_counter()
    manifest = build_smol(config, args.out,
                          progress=lambda stage, msg: print(f"[{time.perf_counter() - t0:7.1f}s] {stage}: {msg}",
                                                            flush=True))
    print(json.dumps({"rates": manifest.rates, "mix": manifest.mix, "stage_times_s": manifest.stage_times_s},
                     indent=1, default=str))


if __name__ == "__main__":
    main()
