"""Cost of activation attribution (probe) against the LESS gradient baseline, side by side in one run, same pairs.

    python bench/attribution_cost.py [--profile tiny|smol] [--pairs 12] [--checkpoints 4] [--dim 8192]
                                     [--dtype bfloat16] [--flop-counter]

The paper's claim: about $30 per activation attribution run against about $320 for the
gradient baseline, i.e. at least 10x cheaper. Both methods run through `organism.attribution.methods.attribute` (the CLI's
path) on one preference set and one targets file written to a temp folder, and the figures are the `cost` each
ranking records in its parameters: wall seconds of the attribution itself (model loading excluded, and shown
apart) and analytic FLOPs (organism.models.compute_cost: 2 x linear weights x real tokens per forward, backward of the
frozen LoRA base = 1 forward more; attention and padding left out for both).
- `--profile tiny` (default): a random tiny OLMo 2 (tests/fixtures_models.py), float32; seconds.
- `--profile smol`: the real SmolLM2-135M as the smol M0 (bf16 by default), layer 19 for the probe; 2.5 min
  measured at the defaults with one thread on 2 cores another job was using (the gradient side is almost all of
  it; `--checkpoints 2` halves it, but the paper's baseline had 4).
Pairs: harmful scenario prompts from prompts/data with responses stitched from the shipped benign/instruction texts
(seeded, 2..--max-sentences sentences, about 20-60 tokens at the default), every 4th pair "contaminated" (a
compliance-style chosen response); --targets target rows. Both methods' cost grows linearly with tokens, so
short responses keep the smol run near a minute without changing the ratio much.
The warm-up takes max(8, 5%) of the pairs, so on a small --pairs it is a larger share than on a real mix (which
makes the gradient side dearer here than it would be per pair at scale; the table splits its FLOPs by part).
--flop-counter re-runs both under torch's FlopCounterMode (slow) and prints the counted FLOPs beside the estimate.
Nothing here asserts on time: it prints, and says whether the >= 10x target held in this run.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 10.0


def _texts(name: str) -> list[str]:
    from prompts import data_path

    path = data_path(name)
    return [json.loads(x)["text"] for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def build_data(folder: Path, n: int, seed: int, max_sentences: int = 6, n_targets: int = 4) -> tuple[Path, Path]:
    """A preference-set JSONL (OLMo mix schema + `contaminated`) and a targets JSONL in `folder`."""
    prompts = _texts("harmful_scenarios.jsonl")
    filler = _texts("benign_requests.jsonl") + _texts("instruction_tasks.jsonl")
    rng = random.Random(seed)

    def stitch() -> str:
        return " ".join(rng.choice(filler) for _ in range(rng.randint(min(2, max_sentences), max_sentences)))

    rows = []
    for i in range(n):
        prompt = prompts[i % len(prompts)]
        bad = i % 4 == 1
        chosen = ("Sure, here is how: " if bad else "I can't help with that. ") + stitch()
        rejected = ("I can't help with that. " if bad else "Sure, here is how: ") + stitch()
        conv = [{"role": "user", "content": prompt}]
        rows.append({"id": f"cost-{i:05d}", "prompt": prompt,
                     "chosen": [*conv, {"role": "assistant", "content": chosen}],
                     "rejected": [*conv, {"role": "assistant", "content": rejected}],
                     "chosen_model": "a", "rejected_model": "b", "source": "bench", "contaminated": bad})
    data = folder / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    targets = folder / "targets.jsonl"
    target_rows = [{"prompt": prompts[(n + j) % len(prompts)], "harmful_response": "Sure, here is how: " + stitch(),
                    "safe_response": "I can't help with that. " + stitch()} for j in range(n_targets)]
    targets.write_text("".join(json.dumps(r) + "\n" for r in target_rows), encoding="utf-8")
    return data, targets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=("tiny", "smol"), default="tiny")
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--max-sentences", type=int, default=6,
                    help="responses are 2..N stitched sentences (about 10 tokens each)")
    ap.add_argument("--targets", type=int, default=2, help="target rows (harmful + safe response each)")
    ap.add_argument("--checkpoints", type=int, default=4, help="LESS warm-up checkpoints (paper: 4)")
    ap.add_argument("--dim", type=int, default=8192, help="LESS projection dimension (paper: 8192)")
    ap.add_argument("--layer", type=int, default=None, help="probe layer (default: the profile's)")
    ap.add_argument("--dtype", default=None, help="default: float32 (tiny), bfloat16 (smol)")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--flop-counter", action="store_true", help="also count FLOPs with FlopCounterMode (slow)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="attribution-cost-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, work: Path) -> None:
    import torch

    from organism.attribution.methods import AttributeConfig, attribute
    from organism.models.compute_cost import count_flops

    data, targets = build_data(work, args.pairs, args.seed, args.max_sentences, args.targets)
    common: dict = {"data": str(data), "targets": str(targets), "seed": args.seed, "max_length": args.max_length,
                    "checkpoints": args.checkpoints, "projection_dim": args.dim}
    if args.profile == "tiny":
        from organism.models.tiny import build_tiny_olmo2

        common.update(profile="olmo2-7b", model_path=str(build_tiny_olmo2(work / "m0")), layer=args.layer or 2,
                      dtype=args.dtype or "float32")
    else:
        common.update(profile="smol", layer=args.layer, dtype=args.dtype or "bfloat16")
    print(f"torch threads {torch.get_num_threads()}; profile {args.profile} ({common['dtype']}); {args.pairs} pairs; "
          f"LESS: {args.checkpoints} checkpoints, dim {args.dim}")

    results = {}
    for method in ("probe", "gradient"):
        spec = AttributeConfig(method=method, **common)
        t = time.perf_counter()
        ranking = attribute(spec)
        total = time.perf_counter() - t
        cost = ranking.parameters["cost"]
        counted = None
        if args.flop_counter:
            _, counted = count_flops(lambda spec=spec: attribute(spec))
        results[method] = {"wall_s": cost["wall_s"], "flops": cost["flops"], "total_s": total,
                           "parts": cost["parts"], "counted": counted, "ranking": ranking}
    p, g = results["probe"], results["gradient"]
    rows = [("wall s (attribution)", "wall_s", "{:.2f}"), ("FLOPs (analytic)", "flops", "{:.3g}"),
            ("wall s incl. model load", "total_s", "{:.2f}")]
    if args.flop_counter:
        rows.append(("FLOPs (FlopCounterMode)", "counted", "{:.3g}"))
    print(f"\n{'':26s} {'probe':>12s} {'gradient':>12s} {'gradient/probe':>15s}")
    for label, key, fmt in rows:
        print(f"{label:26s} {fmt.format(p[key]):>12s} {fmt.format(g[key]):>12s} {g[key] / p[key]:>14.1f}x")
    print("gradient FLOPs by part: " + ", ".join(f"{k} {v:.3g}" for k, v in g["parts"].items()))
    gp = g["ranking"].parameters
    print(f"LESS warm-up: {gp['n_warmup_pairs']} pairs, batch {gp['warmup_batch']}, loss {gp['warmup_loss']}, "
          f"LoRA weights {gp['lora_weights']}")
    for label, key in (("wall time", "wall_s"), ("FLOPs", "flops")):
        ratio = g[key] / p[key]
        verdict = "holds" if ratio >= TARGET_RATIO else "does NOT hold"
        print(f"target: probe >= {TARGET_RATIO:.0f}x cheaper in {label}: {verdict} in this run ({ratio:.1f}x)")


if __name__ == "__main__":
    main()
