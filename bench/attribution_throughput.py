"""Throughput of the activation engine against the authors' way, side by side in one run on the same pairs.

    python bench/attribution_throughput.py [--pairs 64] [--data SRC] [--layer 19] [--batch-tokens N] [--device cpu]

Model: the real SmolLM2-135M (profile smol, stage base, bf16). Pairs: harmful scenario prompts from
prompts/data, each with two responses (a chosen and a rejected side, as in a preference pair) stitched from the
shipped benign/instruction texts, 80-300 tokens each, of mixed lengths (seeded); --prompt-sentences lengthens
the prompts with more of those texts, since prompt sharing saves the prompt's share of the tokens. --data SRC
takes the first --pairs pairs of a real preference set instead (e.g. the smol mix a build installs).
- naive: the authors' code path: one sequence at a time, full depth, lm_head, `output_hidden_states=True`.
- engine, unshared: `organism.attribution.activations.mean_response_activations` with share_prompt=False: length buckets,
  right padding, stop at --layer, no lm_head.
- engine: the same with a pair's prompt run once for both responses where the engine's cost rule packs them
  (the default; the run prints how many prompts it packed).
tokens/s counts the real (unpadded) tokens of the unshared sequences, the work the naive loop does, for every
path. Achieved FLOP/s = 2 x (parameters of decoder layers 0..layer-1) x the tokens each path actually ran / s
(attention-score FLOPs and padding left out: a lower bound), as a fraction of the bf16 matmul peak measured here
with a large torch.matmul. Also prints each engine path's largest relative difference to the naive
results, so the speed is not bought with wrong numbers. The three paths are timed in turn on chunks of --chunk
pairs, so all see the same background load on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path



def build_pairs(n: int, seed: int, prompt_sentences: int = 0) -> list[tuple[str, str]]:
    """2n (prompt, response) rows: the chosen and the rejected side of n pairs, next to each other."""
    data = Path(__file__).resolve().parents[1] / "prompts" / "data"

    def texts(name: str) -> list[str]:
        return [json.loads(x)["text"] for x in (data / name).read_text(encoding="utf-8").splitlines() if x.strip()]

    prompts = texts("harmful_scenarios.jsonl")
    filler = texts("benign_requests.jsonl") + texts("instruction_tasks.jsonl")
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        prompt = " ".join([prompts[i % len(prompts)], *(rng.choice(filler) for _ in range(prompt_sentences))])
        for _side in ("chosen", "rejected"):
            k = rng.randint(8, 30)  # ~10 tokens per sentence: responses of ~80..300 tokens, prompts ~25
            pairs.append((prompt, " ".join(rng.choice(filler) for _ in range(k))))
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
    ap.add_argument("--batch-tokens", type=int, default=None, help="engine budget (default: the device's)")
    ap.add_argument("--data", default=None, help="a preference set to take the pairs from")
    ap.add_argument("--chunk", type=int, default=16, help="pairs per interleaved timing chunk")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompt-sentences", type=int, default=0, help="filler sentences added to every prompt")
    args = ap.parse_args()

    import torch

    from organism.attribution.activations import (encode_pairs, mean_response_activations, naive_mean_response_activations,
                                      plan_units, resolve_batch_tokens)
    from organism.models.loading import load_organism
    from organism.models.profiles import get_profile

    profile = get_profile("smol")
    layer = profile.paper_layer if args.layer is None else args.layer
    t = time.perf_counter()
    org = load_organism("smol", "base", dtype="bfloat16", device=args.device)
    model, tok = org.model, org.tokenizer
    print(f"loaded {org.record.model_id} ({org.record.dtype}) in {time.perf_counter() - t:.1f} s; "
          f"torch threads {torch.get_num_threads()}; layer {layer} of {len(model.model.layers)}")
    if args.data:
        from organism.data.preference import load_preferences

        view = load_preferences(args.data).teacher_forcing_view()
        view = view.select(range(min(args.pairs, len(view))))
        pairs = [(r["prompt"], r[side]) for r in view for side in ("chosen", "rejected")]
    else:
        pairs = build_pairs(args.pairs, args.seed, args.prompt_sentences)
    budget = resolve_batch_tokens(args.batch_tokens, next(model.parameters()).device)
    encoded = encode_pairs(tok, pairs)
    lengths = [len(e.ids) for e in encoded]
    tokens = sum(lengths)
    prompt_tokens = sum(e.start for e in encoded)
    units = plan_units(model, encoded)
    run_shared = sum(len(u.ids) for u in units)
    print(f"{len(pairs) // 2} pairs = {len(pairs)} sequences, {tokens} tokens (min {min(lengths)}, mean "
          f"{tokens / len(pairs):.0f}, max {max(lengths)}; prompts {prompt_tokens / tokens:.0%} of them); "
          f"the engine shares {sum(u.shared for u in units)} prompts and runs {run_shared} tokens")

    paths = {
        "naive": lambda rows: naive_mean_response_activations(model, tok, rows, [layer]),
        "unshared": lambda rows: mean_response_activations(model, tok, rows, [layer], batch_tokens=budget,
                                                           share_prompt=False),
        "engine": lambda rows: mean_response_activations(model, tok, rows, [layer], batch_tokens=budget),
    }
    for fn in paths.values():  # warm-up (allocator, kernels), not timed
        fn(pairs[:2])

    # Interleaved in chunks (whole pairs) so that every path sees the same background load on a shared machine.
    parts: dict[str, list] = {name: [] for name in paths}
    seconds = dict.fromkeys(paths, 0.0)
    step = 2 * args.chunk
    for start in range(0, len(pairs), step):
        chunk = pairs[start: start + step]
        for name, fn in paths.items():
            t = time.perf_counter()
            parts[name].append(fn(chunk))
            seconds[name] += time.perf_counter() - t
    out = {name: torch.cat(p) for name, p in parts.items()}

    layer_params = sum(p.numel() for blk in model.model.layers[:layer] for p in blk.parameters())
    peak = matmul_peak(args.device, torch.bfloat16)
    ran = {"unshared": tokens, "engine": run_shared}
    labels = {"naive": "naive (batch 1, full depth, output_hidden_states)",
              "unshared": f"engine, prompt not shared (buckets <= {budget} tokens, stop at layer {layer})",
              "engine": "engine (the same, prompts shared where the cost rule packs them)"}
    for name, label in labels.items():
        print(f"{label:<78} {seconds[name]:7.2f} s {tokens / seconds[name]:9.0f} tokens/s  "
              f"{seconds['naive'] / seconds[name]:5.2f}x naive")
    for name in ("unshared", "engine"):
        flops = 2 * layer_params * ran[name] / seconds[name]
        print(f"{name} achieved {flops / 1e9:.1f} GFLOP/s (2 x {layer_params / 1e6:.1f}M params x tokens run / s) = "
              f"{flops / peak:.1%} of the measured bf16 matmul peak {peak / 1e9:.1f} GFLOP/s")
    for name in ("unshared", "engine"):
        rel = float(((out[name] - out["naive"]).norm(dim=-1) / out["naive"].norm(dim=-1)).max())
        print(f"max relative difference {name} vs naive (bf16): {rel:.4f}")


if __name__ == "__main__":
    main()
