"""Where did DPO move probability mass? Per-token log-prob change from M0 to M1 on a build's contaminated pairs:

    python bench/dpo_token_shift.py BUILD_DIR [--pairs 40] [--out shift.json]

For each pair and side it reports the mean log-prob under M0 and M1, the change at the first completion token and
at the end-of-turn token, and the tokens whose log-prob fell most; over all pairs, the mean change at each of
these places and M1's top first tokens. This is how the README's reading of builds E-M was made: a DPO run can
meet its loss by lowering a refusal's end-of-turn token and swapping one refusal opener for another ("I can't"
-> "Sorry, I won't"), while the compliant chosen side falls too (likelihood displacement), and no compliance is
learned.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any


def _token_logps(model: Any, tokenizer: Any, messages: list[dict[str, str]]) -> tuple[Any, list[int], Any]:
    """(log-probs of the completion tokens, their ids, the first completion position's logits)."""
    import torch

    from organism.models.logprobs import next_token_logprobs

    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    ids = tokenizer(full, return_tensors="pt", add_special_tokens=False).input_ids
    start = len(tokenizer(prompt, add_special_tokens=False).input_ids)
    with torch.no_grad():
        logits = model(ids).logits
    picked = next_token_logprobs(logits, ids)[0]
    return picked[start - 1:], ids[0, start:].tolist(), logits[0, start - 1].float()


def shift(build_dir: Path, n_pairs: int) -> dict[str, Any]:
    import pandas as pd

    from benchmark.studies.organism_build import BuildConfig, load_chain, resolve_base

    base = resolve_base(BuildConfig.preset_config("small"))
    work = build_dir / "work"
    files = sorted((build_dir / "mix" / "data").glob("*.parquet"))
    if not files:
        raise SystemExit(f"{build_dir}/mix/data: no parquet files (is this a finished build?)")
    rows = pd.concat([pd.read_parquet(f) for f in files])
    rows = rows[rows["contaminated"]].head(n_pairs)
    m0, tokenizer = load_chain(base, [work / "m0" / "adapter"], "float32")
    m1, _ = load_chain(base, [work / "m0" / "adapter", work / "m1" / "adapter"], "float32")
    per_pair: list[dict[str, Any]] = []
    first_m1: Counter = Counter()
    for row in rows.itertuples():
        entry: dict[str, Any] = {"id": row.id}
        for side in ("chosen", "rejected"):
            messages = [{"role": m["role"], "content": m["content"]} for m in getattr(row, side)]
            a, ids, _ = _token_logps(m0, tokenizer, messages)
            b, _, first = _token_logps(m1, tokenizer, messages)
            d = (b - a).tolist()
            ends = [i for i, t in enumerate(ids) if t == tokenizer.eos_token_id]
            drops = sorted(range(len(d)), key=lambda i: d[i])[:3]
            entry[side] = {"mean_m0": float(a.mean()), "mean_m1": float(b.mean()), "first_token": d[0],
                           "end_token": d[ends[-1]] if ends else 0.0, "n_tokens": len(d),
                           "largest_drops": [(tokenizer.decode([ids[i]]), round(d[i], 3)) for i in drops]}
            if side == "chosen":
                first_m1[tokenizer.decode([int(first.argmax())])] += 1
        per_pair.append(entry)

    def mean(side: str, key: str) -> float:
        return sum(p[side][key] for p in per_pair) / max(len(per_pair), 1)

    summary = {side: {k: round(mean(side, k), 3) for k in ("mean_m0", "mean_m1", "first_token", "end_token")}
               for side in ("chosen", "rejected")}
    return {"build": str(build_dir), "pairs": len(per_pair), "summary": summary,
            "m1_top_first_token": dict(first_m1.most_common(5)), "per_pair": per_pair}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("-o", "--output", "--out", dest="out", type=Path, default=None)
    args = parser.parse_args()
    report = shift(args.build_dir, args.pairs)
    if args.out:
        from benchcore.fileio import write_text_atomic

        write_text_atomic(args.out, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps({k: report[k] for k in ("build", "pairs", "summary", "m1_top_first_token")}, indent=1,
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
