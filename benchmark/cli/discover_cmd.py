"""`organism-bench discover`: cluster what DPO changed against what the preference pairs teach, no labels needed.

Writes heatmap.png, heatmap.html and clusters.json to -o and prints the flagged (candidate contaminated) cluster,
with its purity and recall when the preference data carries a ground-truth column (the smol mix does).
"""

from __future__ import annotations

import argparse

from benchmark.cli.base import add_output, console, leaf, print_json


def _batch_size(text: str) -> int | str:
    return text if text == "auto" else int(text)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("discover", help="unsupervised discovery: Ward-clustered heatmap of behavior x pair cosines")
    p.add_argument("--profile", required=True, help="organism profile (see `organism-bench ls --profiles`)")
    p.add_argument("--prompts", type=int, default=None,
                   help="dtc-harmful test records to generate for, in suite order (default: all)")
    p.add_argument("--pairs", type=int, default=500, help="preference pairs sampled uniformly (seeded; default 500)")
    p.add_argument("--layer", type=int, default=None,
                   help="hidden_states index (0 = embeddings; default: the profile's paper layer)")
    p.add_argument("--row-clusters", type=int, default=4, help="Ward clusters of prompts (default 4)")
    p.add_argument("--col-clusters", type=int, default=4, help="Ward clusters of pairs (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pair sample")
    p.add_argument("--data", default=None,
                   help="preference data: folder, .parquet/.jsonl or Hub id (default: the profile's mix)")
    p.add_argument("--revision", default=None, help="data revision (a Hub id needs one)")
    p.add_argument("--differ", choices=("verdict", "text"), default="verdict",
                   help="keep a prompt when the refusal judge's verdicts differ (default) or the texts differ")
    p.add_argument("--max-new-tokens", type=int, default=96, help="greedy generation length (default 96)")
    p.add_argument("--batch-size", type=_batch_size, default="auto", help="generation batch size or 'auto'")
    p.add_argument("--batch-tokens", type=int, default=None, help="padded tokens per activation batch (default: 512 on CPU, 8192 on a GPU)")
    p.add_argument("--max-length", type=int, default=2048, help="tokens per teacher-forced sequence")
    p.add_argument("--chat-template", action="store_true", help="teacher-force with the chat template (paper: raw)")
    p.add_argument("--top", type=int, default=5, help="prompts and pairs listed per cluster (default 5)")
    p.add_argument("--m0-path", default=None, help="a local checkpoint folder to use as M0")
    p.add_argument("--m1-path", default=None, help="a local checkpoint folder to use as M1")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="bfloat16")
    add_output(p, "output folder (heatmap.png, heatmap.html, clusters.json)", required=True, metavar="DIR")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    leaf(p, run)


def run(args: argparse.Namespace) -> int:
    from benchmark.studies.discovery import DiscoverConfig, fmt_share, run_discovery

    settings = DiscoverConfig(
        prompts=args.prompts, pairs=args.pairs, layer=args.layer, row_clusters=args.row_clusters,
        col_clusters=args.col_clusters, seed=args.seed, data=args.data, revision=args.revision, differ=args.differ,
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, batch_tokens=args.batch_tokens,
        max_length=args.max_length, chat_template=args.chat_template, top_k=args.top, m0_path=args.m0_path,
        m1_path=args.m1_path, device=args.device, dtype=args.dtype,
    )
    if args.json:
        done = run_discovery(args.profile, settings, out=args.output)
    else:
        out = console()
        with out.status("discover") as status:
            done = run_discovery(args.profile, settings, out=args.output,
                                 progress=lambda msg: status.update(f"discover: {msg}"))
    r = done.result
    f = r.flagged_summary
    summary = {
        "out": args.output, "flagged_cluster": r.flagged, "size": f.size, "mean_cosine": f.mean_cosine,
        "purity": f.purity, "n_contaminated": f.n_contaminated, "recall": r.recall,
        "contaminated_in_sample": r.n_contaminated, "prompts": dict(done.meta.get("prompts", {})),
        "pairs": dict(done.meta.get("pairs", {})), "notes": list(done.meta.get("notes", [])),
    }
    summary["prompts"].pop("ids", None)
    if args.json:
        print_json(summary)
        return 0
    out = console()
    pr = summary["prompts"]
    out.print(f"{pr.get('differ', '?')} of {pr.get('generated', '?')} test prompts differ between M0 and M1; "
              f"{r.cosine.shape[1]} pairs sampled; {len(r.row_summaries)} x {len(r.col_summaries)} clusters")
    line = f"flagged cluster C{r.flagged}: {f.size} pairs, mean cosine {f.mean_cosine:.3f}"
    if f.purity is not None:
        line += (f", purity {fmt_share(f.purity)} ({f.n_contaminated}/{f.size} contaminated), recall "
                 f"{fmt_share(r.recall)} of {r.n_contaminated} contaminated pairs in the sample")
    else:
        line += " (no ground truth in this data)"
    out.print(line)
    for c in r.col_summaries:
        purity = "" if c.purity is None else f", purity {fmt_share(c.purity)}"
        mark = " (flagged)" if c.id == r.flagged else ""
        out.print(f"  C{c.id}: {c.size} pairs, mean cosine {c.mean_cosine:.3f}{purity}{mark}")
    for note in summary["notes"]:
        out.print(f"note: {note}")
    out.print(f"wrote {args.output}/heatmap.png, heatmap.html, clusters.json")
    return 0
