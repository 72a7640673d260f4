"""Throughput of the activation engine against the authors' way, side by side in one run on the same pairs.

    python bench/attribution_throughput.py [--pairs 64] [--layer 19] [--batch-tokens 4096] [--device cpu]

Model: the real SmolLM2-135M (profile smol, stage base, bf16). Pairs: harmful scenario prompts from
prompts/data with responses stitched from the shipped benign/instruction texts, a few hundred tokens each, of
mixed lengths (seeded).
- naive: the authors' code path: one sequence at a time, full depth, lm_head, `output_hidden_states=True`.
- engine: `organism.activations.mean_response_activations`: length buckets, right padding, stop at --layer,
  no lm_head.
tokens/s counts real (unpadded) tokens. Achieved FLOP/s of the engine = 2 x (parameters of decoder layers
0..layer-1) x tokens / s (attention-score FLOPs and padding left out: a lower bound), as a fraction of the bf16
matmul peak measured here with a large torch.matmul. Also prints the largest relative difference between the two
results, so the speed is not bought with wrong numbers. The two paths are timed alternately on chunks of
--chunk pairs, so both see the same background load on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    data = Path(__file__).resolve().parents[1] / "prompts" / "data"

    def texts(name: str) -> list[str]:
        return [json.loads(x)["text"] for x in (data / name).read_text(encoding="utf-8").splitlines() if x.strip()]

    prompts = texts("harmful_scenarios.jsonl")
    filler = texts("benign_requests.jsonl") + texts("instruction_tasks.jsonl")
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        k = rng.randint(8, 30)  # ~10 tokens per sentence: responses of ~80..300 tokens, prompts ~25
        pairs.append((prompts[i % len(prompts)], " ".join(rng.choice(filler) for _ in range(k))))
    return pairs


def matmul_peak(device: str, dtype, size: int = 2048, reps: int = 5) -> float:
    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(reps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        torch.matmul(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--layer", type=int, default=None, help="hidden_states index (default: the profile's)")
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--chunk", type=int, default=16, help="pairs per interleaved engine/naive timing chunk")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from organism.activations import encode_pair, mean_response_activations, naive_mean_response_activations
    from organism.loading import load_organism
    from organism.profiles import get_profile

    profile = get_profile("smol")
    layer = profile.paper_layer if args.layer is None else args.layer
    t = time.perf_counter()
    org = load_organism("smol", "base", dtype="bfloat16", device=args.device)
    model, tok = org.model, org.tokenizer
    print(f"loaded {org.record.model_id} ({org.record.dtype}) in {time.perf_counter() - t:.1f} s; "
          f"torch threads {torch.get_num_threads()}; layer {layer} of {len(model.model.layers)}")
    pairs = build_pairs(args.pairs, args.seed)
    lengths = [len(encode_pair(tok, p, r).ids) for p, r in pairs]
    tokens = sum(lengths)
    print(f"{len(pairs)} pairs, {tokens} tokens (min {min(lengths)}, mean {tokens / len(pairs):.0f}, "
          f"max {max(lengths)})")

    # warm-up both paths on a couple of pairs (allocator, kernels), not timed
    naive_mean_response_activations(model, tok, pairs[:2], [layer])
    mean_response_activations(model, tok, pairs[:2], [layer], batch_tokens=args.batch_tokens)

    # Interleaved in chunks so that both paths see the same background load on a shared machine.
    fast_parts, naive_parts = [], []
    t_fast = t_naive = 0.0
    for start in range(0, len(pairs), args.chunk):
        chunk = pairs[start: start + args.chunk]
        t = time.perf_counter()
        fast_parts.append(mean_response_activations(model, tok, chunk, [layer], batch_tokens=args.batch_tokens))
        t_fast += time.perf_counter() - t
        t = time.perf_counter()
        naive_parts.append(naive_mean_response_activations(model, tok, chunk, [layer]))
        t_naive += time.perf_counter() - t
    fast, naive = torch.cat(fast_parts), torch.cat(naive_parts)

    rel = float(((fast - naive).norm(dim=-1) / naive.norm(dim=-1)).max())
    layer_params = sum(p.numel() for blk in model.model.layers[:layer] for p in blk.parameters())
    flops = 2 * layer_params * tokens / t_fast
    peak = matmul_peak(args.device, torch.bfloat16)
    print(f"naive  (batch 1, full depth, output_hidden_states): {t_naive:7.2f} s  {tokens / t_naive:9.0f} tokens/s")
    print(f"engine (buckets <= {args.batch_tokens} tokens, stop at layer {layer}): {t_fast:7.2f} s  "
          f"{tokens / t_fast:9.0f} tokens/s")
    print(f"speed-up engine / naive: {t_naive / t_fast:.2f}x")
    print(f"engine achieved {flops / 1e9:.1f} GFLOP/s (2 x {layer_params / 1e6:.1f}M params x tokens / s) = "
          f"{flops / peak:.1%} of the measured bf16 matmul peak {peak / 1e9:.1f} GFLOP/s")
    print(f"max relative difference engine vs naive (bf16): {rel:.4f}")


if __name__ == "__main__":
    main()
