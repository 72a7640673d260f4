"""How much one prompt's behavior vector varies as a ranker: the single-prompt `behavior` method graded for every
target prompt, next to the pooled probing vector built from the same targets.

    python bench/behavior_spread.py --targets T.jsonl [--data SRC] [--profile smol] [--layer L] [--k 20,40,truth]
                                    [--model-path DIR] [--dtype bfloat16] [--json OUT]

The paper ranks with one test prompt's vector and with the probing vector averaged over many
prompts; this prints AUROC and precision@k of the behavior ranking of each target prompt (what `attribute --method
behavior --target-index i` writes, one i per row), their median and range, and the probe's row. Everything comes
from one model load and one pass over the pairs: prompt i's behavior vector is row i of the vector bank (the same
prompts in the same order; both are the mean harmful minus the mean safe activation of that prompt's targets).
--data defaults to the smol profile's installed mix; it needs a `contaminated` column.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", required=True, type=Path)
    parser.add_argument("--data", default=None)
    parser.add_argument("--profile", default="smol")
    parser.add_argument("--layer", type=int, default=None, help="hidden_states index (default: the profile's)")
    parser.add_argument("--k", default="20,40,truth")
    parser.add_argument("--model-path", default=None)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch
    from attribution_quality import _ks, quality_rows

    from organism.attribution.methods import (_view_rows, cosine_ranking, datapoint_vectors, load_targets, probing_vector,
                                      vector_bank)
    from organism.models.loading import load_organism
    from organism.attribution.metrics import truth_from_preferences
    from organism.data.preference import load_preferences, load_profile_preferences
    from organism.models.profiles import get_profile

    profile = get_profile(args.profile)
    layer = profile.paper_layer if args.layer is None else args.layer
    pset = load_preferences(args.data) if args.data else load_profile_preferences(args.profile)
    truth = truth_from_preferences(pset)
    ks = _ks(args.k, sum(truth.values()))
    targets = load_targets(args.targets)
    m0 = load_organism(profile, "m0", dtype=args.dtype, device=args.device, model_path=args.model_path)
    prompts, bank = vector_bank(m0.model, m0.tokenizer, targets, layer)
    pv = datapoint_vectors(m0.model, m0.tokenizer, _view_rows(pset, None), layer)
    rankings = {f"behavior[{i}]": cosine_ranking("activation-behavior", pv, bank[i].to(torch.float32),
                                                 {"target_index": i})
                for i in range(len(prompts))}
    probe = probing_vector(m0.model, m0.tokenizer, targets, layer)
    rankings["probe"] = cosine_ranking("activation-probe", pv, probe.to(torch.float32), {})
    rows = quality_rows(rankings, truth, ks)
    per_prompt = [r for r in rows if r["method"] != "probe"]
    counts = {p: sum(1 for q, _ in targets.harmful if q == p) for p in prompts}

    print(f"{len(truth)} pairs, {sum(truth.values())} contaminated; layer {layer}; {len(prompts)} target prompts")
    cols = ["auroc"] + [f"p@{k}" for k in ks]
    print(f"{'ranking':<14} {'harmful':>7} " + " ".join(f"{c:>7}" for c in cols))
    for i, r in enumerate(per_prompt):
        print(f"{r['method']:<14} {counts[prompts[i]]:>7} " + " ".join(f"{r[c]:7.3f}" for c in cols))
    summary = {}
    for name, fn in (("median", statistics.median), ("min", min), ("max", max)):
        summary[name] = {c: fn(r[c] for r in per_prompt) for c in cols}
        print(f"{name:<14} {'':>7} " + " ".join(f"{summary[name][c]:7.3f}" for c in cols))
    probe_row = next(r for r in rows if r["method"] == "probe")
    print(f"{'probe':<14} {len(targets.harmful):>7} " + " ".join(f"{probe_row[c]:7.3f}" for c in cols))
    beaten = sum(1 for r in per_prompt if r["auroc"] >= probe_row["auroc"])
    print(f"behavior prompts with AUROC >= the probe's: {beaten} of {len(per_prompt)}")
    if args.json:
        from benchcore.fileio import write_text_atomic

        doc = {"layer": layer, "ks": ks, "prompts": prompts, "rows": rows, "summary": summary,
               "harmful_targets_per_prompt": [counts[p] for p in prompts]}
        write_text_atomic(args.json, json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
