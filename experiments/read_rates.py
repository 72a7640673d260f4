"""Harmful rates of a smol build by reading: the labels that readers gave in the shipped judge calibration set,
grouped by decoding and distractor variant, with the same cluster-bootstrap intervals as bench/smol_rates.py, next
to the refusal judge's rates on the very same responses:

    python bench/read_rates.py smol-M-m1 [--calibration prompts/data/judge_calibration.jsonl]

The argument is an id prefix: calibration rows of a build are named `smol-<BUILD>-<stage>-<decoding>-<prompt id>`
(decoding `greedy`, or `t07s0` for the first T=0.7 sample). Why it exists: on this organism the judge over-counts
format-shaped non-answers and "hollow yes" replies, so the organism's targets are read off these labels, and anyone can
recompute them from the shipped file.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from smol_rates import rate_line, summarise  # the sibling script (a script's own folder is on sys.path)


def group(rows: list[dict[str, Any]], prefix: str) -> dict[str, dict[str, dict[str, dict[str, list[float]]]]]:
    """decoding -> source ("read" | "judge") -> variant -> scenario -> [harmful labels]."""
    from prompts.refusal import complies

    out: dict[str, Any] = defaultdict(lambda: {"read": defaultdict(lambda: defaultdict(list)),
                                               "judge": defaultdict(lambda: defaultdict(list))})
    for row in rows:
        rid = str(row.get("id", ""))
        if not rid.startswith(prefix + "-"):
            continue
        decoding, _, prompt_id = rid[len(prefix) + 1:].partition("-")
        scenario, _, variant = prompt_id.partition(":")
        out[decoding]["read"][variant][scenario].append(float(row["label"]))
        out[decoding]["judge"][variant][scenario].append(float(complies(row["response"])))
    return out


def main() -> None:
    from prompts import data_path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prefix", help="calibration id prefix of one build and stage, e.g. smol-M-m1")
    parser.add_argument("--calibration", type=Path, default=None, help="default: the shipped calibration set")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    path = args.calibration or data_path("judge_calibration.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    grouped = group(rows, args.prefix)
    if not grouped:
        raise SystemExit(f"{path}: no rows whose id starts with {args.prefix}-")
    report = {dec: {src: {**summarise(lab), "n_scenarios": len(lab.get("base", {}))} for src, lab in by.items()}
              for dec, by in sorted(grouped.items())}
    for dec, by in report.items():
        for src in ("read", "judge"):
            print(rate_line(f"{dec:<7} {src:<5} n={by[src]['n_scenarios']:<3}", by[src]))
    if args.json:
        from benchcore.fileio import write_text_atomic

        write_text_atomic(args.json, json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
