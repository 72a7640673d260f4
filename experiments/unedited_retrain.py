"""The reference grid's missing control: M0 retrained on the whole, unedited mix, with the grid's own arithmetic.

The shipped M1 was trained in bfloat16 on a machine with bfloat16 kernels; every grid row is retrained here, on
whatever arithmetic this machine has (float32 on a CPU without bfloat16 kernels). If the unedited retrain already
lands far from M1, part of every row's "reduction vs M1" is the arithmetic, not the edit. This trains that control
with the grid's recipe and cache (`organism.training.retraining`), and prints a model spec that grades it:

    python experiments/unedited_retrain.py -o runs/unedited-spec.yaml
    organism-bench evaluate runs/unedited-spec.yaml -o runs/unedited
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="smol")
    ap.add_argument("-o", "--spec-out", type=Path, required=True, help="model spec (YAML) to grade the retrain")
    args = ap.parse_args()

    from benchcore.fileio import write_text_atomic
    from organism.data.preference import load_profile_preferences
    from organism.models.loading import adapter_sha256, load_organism
    from organism.models.profiles import get_profile
    from organism.training import dpo
    from organism.training.retraining import retrain_dir, retrain_key, retraining_recipe

    prof = get_profile(args.profile)
    mix = load_profile_preferences(prof)
    config = retraining_recipe(prof).config
    loaded = load_organism(prof, "m0", dtype=config.dtype, device="cpu")
    folder = retrain_dir(retrain_key("unedited-mix", mix.data_hash, config, loaded.record.identity))
    start = time.perf_counter()
    if not (folder / "done.json").is_file():
        result = dpo.train_dpo(loaded.model, loaded.tokenizer, loaded.record.identity, list(mix.training_view()),
                               config, folder, ref_cache_dir=dpo.default_ref_cache_dir(), resume=True)
        if not result.completed:
            raise SystemExit(f"stopped at step {result.steps} of {result.total_steps}; run again to resume")
        write_text_atomic(folder / "done.json", json.dumps({"pairs": len(mix), "wall_time_s": result.wall_time_s,
                                                            "final": result.history[-1] if result.history else {}},
                                                           indent=2, default=str) + "\n")
    adapter = folder / "adapter"
    print(json.dumps({"adapter": str(adapter), "adapter_sha256": adapter_sha256(adapter), "pairs": len(mix),
                      "data_hash": mix.data_hash, "wall_time_s": round(time.perf_counter() - start, 1),
                      "done": json.loads((folder / "done.json").read_text(encoding="utf-8"))}, indent=1))
    write_text_atomic(args.spec_out, "\n".join([
        "schema_version: 1", "name: unedited mix retrained (control)", "kind: model", f"profile: {prof.name}",
        "parameters:", "  method: DPO from M0 on the whole mix", "  authors: [organism-bench experiments]",
        "  description: the reference grid's recipe on the unedited mix, on this machine's arithmetic",
        "  compute_cost: {gpu_hours: 0}", "model:", f"  path: {adapter}", "  adapter: true", ""]))


if __name__ == "__main__":
    main()
