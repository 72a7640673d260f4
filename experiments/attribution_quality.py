"""How well each attribution method finds the known culprits, side by side: AUROC and precision@k of every
ranking against the preference data's ground-truth column, with each ranking's recorded cost.

    python bench/attribution_quality.py NAME=RANKING.jsonl... [--data SRC] [--k 20,40,truth] [--json OUT]
                                        [--false-positives-by COLUMN]

--data defaults to the smol profile's installed mix (the data `attribute` ranked and `causal-check` edits). k
"truth" is the number of contaminated pairs, where precision@k equals recall@k (R-precision). A random ranking's
expected precision is the contaminated share and its expected AUROC 0.5, printed as the chance row.
--false-positives-by COLUMN says where each method's misses come from: the non-contaminated pairs in its top k
(the largest k asked for), counted by that column's value (on the smol mix, `source` names the prompt pool).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path



def _ks(text: str, n_truth: int) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip()
        out.append(n_truth if part == "truth" else int(part))
    return out


def quality_rows(rankings: dict[str, object], truth: dict[str, bool], ks: list[int]) -> list[dict]:
    from organism.attribution.metrics import evaluate_ranking

    rows = []
    for name, ranking in rankings.items():
        row = {"method": name, "auroc": evaluate_ranking(ranking, truth).auroc}
        for k in ks:
            row[f"p@{k}"] = evaluate_ranking(ranking, truth, k).precision_at_k
        cost = dict(ranking.parameters).get("cost") or {}
        row["wall_s"] = cost.get("wall_s")
        row["flops"] = cost.get("flops")
        rows.append(row)
    return rows


def false_positives_by(rankings: dict[str, object], truth: dict[str, bool], groups: dict[str, str],
                       k: int) -> dict[str, dict[str, int]]:
    """method -> {group value: count} over the top-k pairs that are not contaminated."""
    out = {}
    for name, ranking in rankings.items():
        counts = Counter(groups.get(i, "?") for i in ranking.ids[:k] if not truth.get(i, False))
        out[name] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rankings", nargs="+", metavar="NAME=FILE")
    parser.add_argument("--data", default=None, help="preference data with a `contaminated` column (default: the "
                                                     "smol profile's installed mix)")
    parser.add_argument("--k", default="20,40,truth")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    parser.add_argument("--false-positives-by", metavar="COLUMN", default=None,
                        help="count each method's top-k non-contaminated pairs by this column's value")
    args = parser.parse_args()

    from organism.attribution.metrics import truth_from_preferences
    from organism.data.preference import load_preferences, load_profile_preferences
    from organism.data.ranking import read_ranking

    pset = load_preferences(args.data) if args.data else load_profile_preferences("smol")
    truth = truth_from_preferences(pset)
    n_truth = sum(truth.values())
    ks = _ks(args.k, n_truth)
    rankings = {}
    for item in args.rankings:
        name, _, path = item.partition("=")
        if not path:
            parser.error(f"expected NAME=FILE, got {item!r}")
        rankings[name] = read_ranking(path)
    rows = quality_rows(rankings, truth, ks)
    share = n_truth / len(truth)
    print(f"{len(truth)} pairs, {n_truth} contaminated ({100 * share:.1f}%); k = {', '.join(map(str, ks))}")
    header = f"{'method':<12} {'AUROC':>6} " + " ".join(f"{'p@' + str(k):>7}" for k in ks) + f" {'wall s':>8} {'FLOPs':>9}"
    print(header)
    print(f"{'chance':<12} {0.5:6.3f} " + " ".join(f"{share:7.3f}" for _ in ks))
    for r in rows:
        wall = f"{r['wall_s']:8.1f}" if r["wall_s"] is not None else f"{'-':>8}"
        flops = f"{r['flops']:9.2e}" if r["flops"] is not None else f"{'-':>9}"
        print(f"{r['method']:<12} {r['auroc']:6.3f} " + " ".join(f"{r[f'p@{k}']:7.3f}" for k in ks)
              + f" {wall} {flops}")
    doc = {"n": len(truth), "n_contaminated": n_truth, "ks": ks, "rows": rows}
    if args.false_positives_by:
        column = args.false_positives_by
        if column not in pset.column_names:
            parser.error(f"{pset.source}: no column {column!r} (columns: {', '.join(pset.column_names)})")
        groups = dict(zip(pset.ids, map(str, pset.column_array(column).to_pylist())))
        k = max(ks)
        fps = false_positives_by(rankings, truth, groups, k)
        print(f"\nnon-contaminated pairs in each top {k}, by {column}:")
        for name, counts in fps.items():
            print(f"{name:<12} " + (", ".join(f"{v} {g}" for g, v in counts.items()) or "none"))
        doc["false_positives_by"] = {"column": column, "k": k, "counts": fps}
    if args.json:
        from benchcore.fileio import write_text_atomic

        write_text_atomic(args.json, json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
