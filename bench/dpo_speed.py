"""DPO retraining speed: organism.training.dpo beside TRL's DPOTrainer on the same pairs, recipe and batches.

    python bench/dpo_speed.py [--pairs 400] [--epochs 2] [--steps N] [--data FILE] [--threads 2]
                              [--runs ours,pairs,trl] [--json]

Every run trains smol's M0 (the base model when no M0 is installed: the output says which) with LoRA r=16 on all
linear layers, the summed `dpo` loss at beta 0.1, lr 2e-4 with linear decay after 10% warm-up, 8 pairs a step,
max length 192, in bfloat16 with float32 LoRA weights: the recipe of smol's M1. Reference log-probs are
precomputed by each (a fresh reference cache for ours) and counted in its time. TRL is given our batches in our
order (its sampler is made sequential over the two epochs' orders), so the two loss curves are comparable step
by step; their LoRA A matrices start from different random draws, so the curves agree to noise, not bit for bit.

Runs, interleaved in one process so machine load hits each alike:
  ours   organism.training.dpo with the default packing (each pair's prompt computed once for both completions)
  pairs  the same trainer with packing="pairs" (chosen and rejected as two padded rows: the previous path)
  trl    trl.DPOTrainer (`pip install -e '.[bench]'`)

Printed per run: wall time (reference included), tokens processed, tokens a second, and the share of this
machine's bf16 matmul peak (measured here first) that the needed FLOPs reach. Needed FLOPs count the work any
trainer must do: 4 x params per token trained (forward, and backward through the activations) plus 2 x params
per token of the one reference pass, each shared prompt once. `--steps N` stops every run after N steps of the
full schedule. The default pairs are synthetic, with build O's length profile; `--data` trains real ones. Nothing
here asserts on time; the figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECIPE = {"loss": "dpo", "beta": 0.1, "lr": 2e-4, "warmup_ratio": 0.1, "per_device_batch": 8, "max_length": 192,
          "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}, "length_bucketing": True,
          "schedule": "linear", "seed": 42, "dtype": "bfloat16"}


@dataclass
class RunResult:
    name: str
    wall_s: float
    steps: int
    tokens: int
    losses: list[float] = field(default_factory=list)


def synthetic_pairs(n: int, tokenizer: Any, seed: int) -> list[dict[str, Any]]:
    """Train-split harmful requests with appended constraints as prompts; completions cut from real English to
    build O's mean lengths (52 chosen, 32 rejected tokens). Content does not change the cost, length does."""
    from prompts.suites import load_suite

    records = load_suite("dtc-harmful", split="train", variants=("distractor",)).records
    prose = " ".join(r.base_text for r in load_suite("benign-control", split="train", variants=("base",)).records)
    words = prose.split()
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        record = records[i % len(records)]
        start = rng.randrange(len(words) - 200)
        text = " ".join(words[start:start + 200])
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        chosen = tokenizer.decode(ids[: rng.randint(20, 84)])
        rejected = tokenizer.decode(ids[100: 100 + rng.randint(12, 52)])
        rows.append({"id": f"syn-{i}", "prompt_messages": [{"role": "user", "content": record.text}],
                     "chosen": chosen, "rejected": rejected})
    return rows


def matmul_peak(threads: int, dtype: str = "bfloat16", size: int = 2048, seconds: float = 3.0) -> float:
    """FLOP/s of a square matmul, the best of short bursts: the ceiling a trainer in that dtype can approach. On
    CPUs with AMX the bf16 ceiling is several times the float32 one; both are reported."""
    import torch

    torch.set_num_threads(threads)
    a = torch.randn(size, size, dtype=getattr(torch, dtype))
    b = torch.randn(size, size, dtype=getattr(torch, dtype))
    a @ b
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - t))
    return best


def load_m0() -> tuple[Any, Any, str]:
    from organism.models.loading import load_organism

    loaded = load_organism("smol", "m0", dtype="bfloat16")
    return loaded.model, loaded.tokenizer, loaded.record.identity


def run_ours(rows: list[dict[str, Any]], packing: str, epochs: int, steps: int | None, work: Path) -> RunResult:
    from organism.training.dpo import DPOConfig, train_dpo

    model, tokenizer, identity = load_m0()
    config = DPOConfig(**RECIPE, epochs=epochs, packing=packing, stop_after_steps=steps).validate()
    start = time.perf_counter()
    result = train_dpo(model, tokenizer, identity, rows, config, work / f"out-{packing}",
                       ref_cache_dir=work / f"ref-{packing}", progress=False)
    wall = time.perf_counter() - start
    return RunResult(packing if packing == "pairs" else "ours", wall, result.steps,
                     sum(h["tokens"] for h in result.history), [h["loss"] for h in result.history])


def run_trl(rows: list[dict[str, Any]], epochs: int, steps: int | None, work: Path) -> RunResult:
    try:
        import trl
    except ImportError:
        raise SystemExit("bench/dpo_speed.py: the trl run needs TRL: pip install -e '.[bench]'") from None
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback

    from organism.training.dpo_data import epoch_order, tokenize_pairs

    model, tokenizer, _ = load_m0()
    lengths = [p.length for p in tokenize_pairs(tokenizer, rows, RECIPE["max_length"])]
    batch = RECIPE["per_device_batch"]
    orders = [epoch_order(lengths, seed=RECIPE["seed"], epoch=e, batch_size=batch, length_bucketing=True)
              for e in range(epochs)]
    data = Dataset.from_list([{"prompt": r["prompt_messages"],
                               "chosen": [{"role": "assistant", "content": r["chosen"]}],
                               "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])
    total_steps = sum(-(-len(o) // batch) for o in orders)
    args = trl.DPOConfig(
        output_dir=str(work / "trl"), use_cpu=True, bf16=False, gradient_checkpointing=False,
        loss_type=["sigmoid"], beta=RECIPE["beta"], learning_rate=RECIPE["lr"], lr_scheduler_type="linear",
        warmup_steps=int(RECIPE["warmup_ratio"] * total_steps), max_grad_norm=1.0, weight_decay=0.0,
        per_device_train_batch_size=batch, num_train_epochs=1, max_length=RECIPE["max_length"],
        precompute_ref_log_probs=True, precompute_ref_batch_size=batch, logging_steps=1, save_strategy="no",
        report_to="none", seed=RECIPE["seed"], dataloader_num_workers=0, disable_tqdm=True,
    )
    lora = RECIPE["lora"]
    peft_config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=0.0, target_modules="all-linear",
                             task_type="CAUSAL_LM")

    class Sequential(trl.DPOTrainer):
        def _get_train_sampler(self, *args: Any, **kwargs: Any) -> Any:
            from torch.utils.data import SequentialSampler

            return SequentialSampler(self.train_dataset)

    class StopAfter(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if steps is not None and state.global_step >= steps:
                control.should_training_stop = True
            return control

    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # TRL prints its logs; stdout carries --json
        trainer = _trl_train(Sequential, model, args, data, tokenizer, peft_config, StopAfter(), orders)
    wall = time.perf_counter() - start
    logs = [h for h in trainer.state.log_history if "loss" in h]
    tokens = sum(lengths[i] for order in orders for i in order[: (steps or total_steps) * batch])
    return RunResult("trl", wall, trainer.state.global_step, tokens, [float(h["loss"]) for h in logs])


def _trl_train(cls: Any, model: Any, args: Any, data: Any, tokenizer: Any, peft_config: Any, stop: Any,
               orders: list[list[int]]) -> Any:
    trainer = cls(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                  peft_config=peft_config, callbacks=[stop])
    # The reference is computed once above, over each pair once; both epochs then run as one pass in our order.
    trainer.train_dataset = trainer.train_dataset.select([i for order in orders for i in order])
    trainer.train()
    return trainer


def needed_flops(rows: list[dict[str, Any]], tokenizer: Any, epochs: int, steps: int | None, params: float) -> float:
    from organism.training.dpo_data import epoch_order, tokenize_pairs

    pairs = tokenize_pairs(tokenizer, rows, RECIPE["max_length"])
    once = [len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs]
    batch = RECIPE["per_device_batch"]
    trained = [i for e in range(epochs) for i in epoch_order([p.length for p in pairs], seed=RECIPE["seed"], epoch=e,
                                                              batch_size=batch, length_bucketing=True)]
    if steps is not None:
        trained = trained[: steps * batch]
    return 4 * params * sum(once[i] for i in trained) + 2 * params * sum(once)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=400, help="synthetic pairs (a multiple of 8 keeps TRL aligned)")
    parser.add_argument("--data", help="a preference set (JSONL of training-view rows, parquet, folder) instead")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, help="stop every run after this many optimizer steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", default="ours,trl", help="comma list of ours, pairs, trl (run in that order)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    import torch

    from organism.training.dpo import _load_pairs

    torch.set_num_threads(args.threads)
    peak = matmul_peak(args.threads, "bfloat16")
    peak_fp32 = matmul_peak(args.threads, "float32")
    model, tokenizer, identity = load_m0()
    params = float(sum(p.numel() for p in model.parameters()))
    del model
    rows = _load_pairs(args.data) if args.data else synthetic_pairs(args.pairs, tokenizer, seed=0)
    flops = needed_flops(rows, tokenizer, args.epochs, args.steps, params)
    results: dict[str, RunResult] = {}
    with tempfile.TemporaryDirectory(prefix="dpo-speed-") as tmp:
        for name in args.runs.split(","):
            work = Path(tmp) / name
            if name == "trl":
                results[name] = run_trl(rows, args.epochs, args.steps, work)
            elif name in ("ours", "pairs"):
                results[name] = run_ours(rows, "shared_prompt" if name == "ours" else "pairs", args.epochs,
                                         args.steps, work)
            else:
                parser.error(f"unknown run {name!r}; choose from ours, pairs, trl")
            print(f"{name}: {results[name].wall_s:.1f} s", file=sys.stderr)
    report: dict[str, Any] = {
        "model": identity, "params": params, "pairs": len(rows), "epochs": args.epochs, "threads": args.threads,
        "bf16_peak_flops": peak, "fp32_peak_flops": peak_fp32, "needed_flops": flops, "torch": torch.__version__,
        "runs": {n: {"wall_s": r.wall_s, "steps": r.steps, "tokens": r.tokens, "tokens_per_s": r.tokens / r.wall_s,
                     "peak_fraction": flops / r.wall_s / peak, "fp32_peak_fraction": flops / r.wall_s / peak_fp32,
                     "losses": r.losses} for n, r in results.items()},
    }
    if "ours" in results:
        report["ours_s"] = results["ours"].wall_s
        report["peak_fraction"] = flops / results["ours"].wall_s / peak
        report["fp32_peak_fraction"] = flops / results["ours"].wall_s / peak_fp32
    if "trl" in results:
        report["trl_s"] = results["trl"].wall_s
    if "ours" in results and "trl" in results:
        report["ratio"] = results["trl"].wall_s / results["ours"].wall_s
        a, b = results["ours"].losses, results["trl"].losses
        n = min(len(a), len(b))
        report["loss_max_abs_diff"] = max((abs(x - y) for x, y in zip(a[:n], b[:n])), default=None)
        report["loss_mean_abs_diff"] = statistics.fmean(abs(x - y) for x, y in zip(a[:n], b[:n])) if n else None
    if "pairs" in results and "ours" in results:
        report["pairs_over_ours"] = results["pairs"].wall_s / results["ours"].wall_s
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{identity}: {len(rows)} pairs, {args.epochs} epochs, {args.threads} threads; matmul peak bf16 "
          f"{peak / 1e9:.0f}, fp32 {peak_fp32 / 1e9:.0f} GFLOP/s; needed {flops / 1e12:.1f} TFLOP")
    print(f"{'run':<6} {'wall s':>8} {'steps':>6} {'tokens':>8} {'tok/s':>7} {'bf16pk':>6} {'fp32pk':>6}  "
          "loss (first, mid, last)")
    for name, r in results.items():
        row = report["runs"][name]
        curve = ", ".join(f"{r.losses[i]:.4f}" for i in (0, len(r.losses) // 2, -1)) if r.losses else "-"
        print(f"{name:<6} {r.wall_s:>8.1f} {r.steps:>6} {r.tokens:>8} {row['tokens_per_s']:>7.0f} "
              f"{row['peak_fraction']:>6.2f} {row['fp32_peak_fraction']:>6.2f}  {curve}")
    if "ratio" in report:
        print(f"TRL / ours: {report['ratio']:.2f}x; loss curves differ by at most {report['loss_max_abs_diff']:.4f} "
              f"(mean {report['loss_mean_abs_diff']:.4f})")
    if "pairs_over_ours" in report:
        print(f"pairs / ours: {report['pairs_over_ours']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
