"""Per-pair gradients of the LESS baseline: a pair at a time (LESS's loop) against batches of pairs read off the LoRA
Linears (organism.attribution.gradient.LoraTaps), side by side in one run on the same pairs and checkpoint.

    python bench/gradient_batching.py [--profile tiny|smol] [--pairs 32] [--batch 1,8] [--repeats 2]
                                      [--dtype float32|bfloat16] [--device cpu|cuda]

Both paths go through `checkpoint_scores` (the same scores, gradient for gradient); only `gradient_batch` differs.
Each batch size is timed `--repeats` times, interleaved, and the best time is kept (other load hurts both).
Pairs and targets: the stitched harmful-prompt pairs of bench/attribution_cost.py. The checkpoint comes from one
short warm-up epoch (LoRA B must be non-zero for A to have a gradient). Printed: pairs/s per batch size, the speed-up
over batch 1, and the largest score difference from batch 1 (float noise only: the scores must agree).
Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path



def _model(args: argparse.Namespace, work: Path):
    """M0 as `attribute` loads it: smol's own, or (tiny) a random tiny OLMo 2 standing in for olmo2-7b's."""
    from organism.models.loading import load_organism

    if args.profile == "tiny":
        from organism.models.tiny import build_tiny_olmo2

        m0 = load_organism("olmo2-7b", "m0", dtype=args.dtype, device=args.device,
                           model_path=build_tiny_olmo2(work / "m0"))
    else:
        m0 = load_organism("smol", "m0", dtype=args.dtype, device=args.device)
    return m0.model, m0.tokenizer


def run(args: argparse.Namespace, work: Path) -> None:
    import torch

    from attribution_cost import build_data
    from organism.attribution.methods import load_targets
    from organism.training.dpo_data import pad_token_id, tokenize_pairs
    from organism.attribution.gradient import (
        CountSketch,
        LessConfig,
        _lora_model,
        _tokens,
        _trainable,
        checkpoint_scores,
        reference_logps,
        target_rows,
        warmup,
    )
    from organism.data.preference import load_preferences

    data, targets_file = build_data(work, args.pairs, args.seed, args.max_sentences, args.targets)
    rows = [dict(r) for r in load_preferences(data).training_view()]
    t_rows = target_rows(load_targets(targets_file))
    model, tok = _model(args, work)
    base = LessConfig(checkpoints=1, dim=args.dim)
    pairs = tokenize_pairs(tok, rows, base.max_length, add_bos=False, source="pairs")
    tpairs = tokenize_pairs(tok, t_rows, base.max_length, add_bos=False, source="targets")
    pad = pad_token_id(tok)
    ref = reference_logps(model, pairs, base.loss, pad)
    tref = reference_logps(model, tpairs, base.loss, pad)
    peft = _lora_model(model, base.lora, base.seed)
    n_warm = min(len(pairs), 16)
    ckpt = warmup(peft, pairs[:n_warm], (ref[0][:n_warm], ref[1][:n_warm]), base, pad)[0]
    sketch = CountSketch([p for _, p in _trainable(peft)], base.dim, base.seed)
    tokens = sum(_tokens(p)[0] for p in pairs)
    print(f"torch threads {torch.get_num_threads()}; profile {args.profile} ({args.dtype}, {args.device}); "
          f"{len(pairs)} pairs ({tokens} tokens through the model), {len(tpairs)} targets; LoRA r "
          f"{base.lora['r']}, {sum(v.numel() for v in ckpt.weights.values())} weights")
    best: dict[int, float] = {}
    scores: dict[int, torch.Tensor] = {}
    for _ in range(args.repeats):
        for b in args.batch:
            cfg = LessConfig(checkpoints=1, dim=args.dim, gradient_batch=b)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            scores[b] = checkpoint_scores(peft, pairs, ref, tpairs, tref, ckpt, sketch, cfg, pad)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            best[b] = min(best.get(b, float("inf")), time.perf_counter() - t)
    first = args.batch[0]
    print(f"\n{'batch':>6s} {'best s':>9s} {'pairs/s':>9s} {'vs batch ' + str(first):>14s} {'max |score diff|':>17s}")
    for b in args.batch:
        n = len(pairs) + len(tpairs)
        diff = float((scores[b] - scores[first]).abs().max())
        print(f"{b:>6d} {best[b]:>9.2f} {n / best[b]:>9.2f} {best[first] / best[b]:>13.2f}x {diff:>17.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=("tiny", "smol"), default="tiny")
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--targets", type=int, default=4)
    ap.add_argument("--max-sentences", type=int, default=6)
    ap.add_argument("--batch", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8],
                    help="comma-separated batch sizes; the first is the baseline (default 1,8)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dim", type=int, default=8192)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gradient-batching-") as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
