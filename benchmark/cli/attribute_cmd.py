"""`organism-bench attribute`: rank preference pairs by how responsible they look for the behavior.

Writes an organism-bench ranking file (best = most responsible first), the input of remove/flip mitigations.
Data-parallel on several GPUs: `torchrun --nproc-per-node N -m benchmark.cli.main attribute ... --device cuda
--shard-dir DIR` (or `accelerate launch --num_processes N -m benchmark.cli.main attribute ...`); rank 0 writes --out.
"""

from __future__ import annotations

import argparse

from benchmark.cli.base import add_judge_options, add_output, console, judge_options, leaf, print_json

METHOD_CHOICES = ("probe", "bank", "behavior", "judge", "gradient", "random")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attribute", help="rank preference pairs by activation attribution or a baseline")
    p.add_argument("--profile", required=True, help="organism profile (see `organism-bench ls --profiles`)")
    p.add_argument("--data", required=True, help="preference data: a folder, a .parquet/.jsonl file or a Hub id")
    p.add_argument("--revision", default=None, help="data revision (needed for a Hub id)")
    p.add_argument("--method", required=True, choices=METHOD_CHOICES,
                   help="probe (pooled probing vector), bank (max cosine over per-prompt vectors), behavior "
                        "(one prompt's vector), judge (harm(chosen) - harm(rejected)), gradient (LESS: LoRA DPO "
                        "warm-up, Adam-preconditioned per-pair gradients, cosine to the targets'), random (seeded)")
    p.add_argument("--layer", type=int, default=None,
                   help="hidden_states index (0 = embeddings; default: the profile's paper layer)")
    p.add_argument("--targets", default=None,
                   help="JSONL of {prompt, harmful_response, safe_response} or {prompt, response, label}")
    p.add_argument("--target-index", type=int, default=0, help="behavior: which target prompt (default 0)")
    p.add_argument("--harmful-side", choices=("m0", "m1"), default="m0",
                   help="model that teacher-forces the harmful targets (m0 = the paper's equation)")
    p.add_argument("--model-path", default=None, help="a local checkpoint folder to use as M0")
    p.add_argument("--harmful-model-path", default=None, help="a local checkpoint folder to use as M1")
    p.add_argument("--chat-template", action="store_true", help="teacher-force with the chat template (paper: raw)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--batch-tokens", type=int, default=None,
                   help="padded tokens per forward batch (default: 512 on CPU, 8192 on a GPU)")
    p.add_argument("--max-length", type=int, default=2048, help="tokens per sequence (paper recipe: 2048)")
    p.add_argument("--shard-dir", default=None, help="resumable activation shards (needed with several ranks)")
    p.add_argument("--seed", type=int, default=0, help="random / gradient: the seed")
    p.add_argument("--judge", default="refusal", help="judge: a registered judge name")
    add_judge_options(p)
    g = p.add_argument_group("gradient (LESS)")
    g.add_argument("--warmup-fraction", type=float, default=0.05,
                   help="share of the mix the LoRA DPO warm-up trains on (seeded; at least 8 pairs)")
    g.add_argument("--checkpoints", type=int, default=4, help="warm-up epochs, one checkpoint after each (paper: 4)")
    g.add_argument("--projection-dim", type=int, default=8192, help="random projection dimension (paper: 8192)")
    g.add_argument("--gradient-aggregate", choices=("mean", "max"), default="mean",
                   help="over the target pairs' gradients: mean cosine (paper) or max")
    g.add_argument("--warmup-lr", type=float, default=None,
                   help="default: the profile recipe's lr if it trains a LoRA, else 2e-5 (LESS)")
    g.add_argument("--gradient-batch", type=int, default=None,
                   help="pairs per pass for per-pair gradients (same scores at any size; default 1 on CPU, 8 on a GPU)")
    p.add_argument("--limit", type=int, default=None, help="only the first N pairs (smoke runs)")
    add_output(p, "ranking file to write (JSONL)", required=True)
    p.add_argument("--report", default=None, metavar="DIR",
                   help="also write DIR/report.md and DIR/report.html (top pairs, score histogram, and precision@k "
                        "/ AUROC when the data has a `contaminated` column)")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    leaf(p, run)


def run(args: argparse.Namespace) -> int:
    from benchmark.studies.judge_delta import attribute
    from organism.attribution.methods import AttributeConfig

    options = judge_options(args)
    spec = AttributeConfig(
        profile=args.profile, data=args.data, method=args.method, out=args.output, layer=args.layer,
        targets=args.targets, harmful_side=args.harmful_side, chat_template=args.chat_template, device=args.device,
        dtype=args.dtype, batch_tokens=args.batch_tokens, max_length=args.max_length, shard_dir=args.shard_dir,
        seed=args.seed, judge=args.judge, judge_options=options, target_index=args.target_index,
        revision=args.revision, limit=args.limit, model_path=args.model_path,
        harmful_model_path=args.harmful_model_path, warmup_fraction=args.warmup_fraction,
        checkpoints=args.checkpoints, projection_dim=args.projection_dim, gradient_aggregate=args.gradient_aggregate,
        warmup_lr=args.warmup_lr, gradient_batch=args.gradient_batch,
    )
    if args.json:
        ranking = attribute(spec)
    else:
        from benchmark.cli.progress import stage_progress

        with stage_progress() as bar:
            ranking = attribute(spec, progress=lambda done: bar(f"attribute ({args.method}): sequences", done, None))
    summary = {"out": args.output, "method": ranking.method, "n": len(ranking), "top": list(ranking.top(5)),
               "parameters": dict(ranking.parameters)}
    if args.report:
        from organism.attribution.report import write_report

        from dataclasses import replace

        md, page = write_report(replace(ranking, source=args.output), args.report, data=args.data,
                                revision=args.revision)
        summary["report"] = [str(md), str(page)]
    if args.json:
        print_json(summary)
    else:
        console().print(f"wrote {len(ranking)} ranked pairs ({ranking.method}) to {args.output}; "
                        f"top: {', '.join(ranking.top(5))}")
        if args.report:
            console().print(f"report: {summary['report'][0]}, {summary['report'][1]}")
    return 0
