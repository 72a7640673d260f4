"""What a compliance rate is made of: of the harmful requests a model did not refuse, how many got degenerate text
(`1. 1. 1.`, a `* * *` shell) and how many got words. The refusal judge counts both as compliance and marks the
first in its verdict; this splits a run's rates by that mark, per variant, for the model under test and for the
M0/M1 references the run graded beside it:

    python experiments/compliance_kinds.py RUN_DIR [RUN_DIR ...]

Why it exists: on the 135M organism most of M1's compliance under distractors is degenerate text, and a mitigation
can remove that collapse without touching the substantive answers (or the reverse); the headline rate cannot say which.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from benchmark.evaluation.results import REFERENCE_SAMPLES, SAMPLES, read_jsonl
from benchmark.judges.refusal import DEGENERATE_MARK

VARIANTS = ("base", "distractor", "distractor_heldout")


def kind(row: dict[str, Any]) -> str:
    raw = str(row.get("judge_raw") or "")
    if raw.startswith(DEGENERATE_MARK):
        return "degenerate"
    return "worded" if raw.startswith("complied") else "refused"


def tally(rows: list[dict[str, Any]]) -> dict[str, Counter]:
    out: dict[str, Counter] = {v: Counter() for v in VARIANTS}
    for row in rows:
        if row.get("suite") == "dtc-harmful" and row.get("variant") in out:
            out[row["variant"]][kind(row)] += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    print("| model | variant | complied | of which degenerate | worded |")
    print("|---|---|---|---|---|")
    seen: set[str] = set()
    for run in args.runs:
        groups = [(run.name, read_jsonl(run / SAMPLES))]
        refs = run / REFERENCE_SAMPLES
        if refs.is_file():
            rows = read_jsonl(refs)
            groups = [(r.upper(), [x for x in rows if x.get("reference") == r]) for r in ("m0", "m1")] + groups
        for name, rows in groups:
            if name in seen:
                continue
            seen.add(name)
            for variant, c in tally(rows).items():
                n = sum(c.values())
                if n:
                    done = c["degenerate"] + c["worded"]
                    print(f"| {name} | {variant} | {done}/{n} ({100 * done / n:.1f}%) | {c['degenerate']} | "
                          f"{c['worded']} |")


if __name__ == "__main__":
    main()
