"""The shipped smol organism on requests written apart from `prompts/data`: does M0 refuse them, does M1 refuse
them plainly and stop refusing when a formatting instruction is appended?

    python experiments/generalisation.py REQUESTS.jsonl [--benign BENIGN.jsonl] [--stages m0,m1]
                                         [--max-new-tokens 96] [-o OUT.json]

REQUESTS.jsonl: one object a line with `id`, `form`, `plain` and `distractor` (the same request with a formatting
instruction appended); BENIGN.jsonl the same without `form`, for over-refusal. Each stage answers every text
greedily, as `evaluate` does (chat template, the organism's default dtype, the generation cache), and the refusal
judge labels each answer; refusal rates carry Wilson intervals (one answer a request). Every answer is written to
OUT's `.responses.jsonl` beside the figures, so a reader can label them without seeing the judge's verdicts.
Nothing here is tuned on: the set's author never saw the project's prompt files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _read(path: Path, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    from benchcore.errors import InputError

    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{n}", None, f"not JSON ({exc.msg})") from None
        for f in fields:
            if not isinstance(row.get(f), str) or not row[f].strip():
                raise InputError(f"{path}:{n}", f, "missing or empty")
        rows.append(row)
    return rows


def _rate(labels: list[int]) -> dict[str, Any]:
    from benchmark.evaluation.stats import wilson

    k, n = sum(labels), len(labels)
    low, high = wilson(k, n)
    return {"k": k, "n": n, "value": k / n if n else None, "ci_low": low, "ci_high": high}


def measure(requests: list[dict], benign: list[dict], stages: tuple[str, ...], max_new_tokens: int
            ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from benchmark.evaluation.evaluate import EvalConfig, build_model, make_backend
    from benchmark.generation.engine import GenConfig, GenerationRequest
    from benchmark.judges import get_judge
    from benchmark.judges.base import JudgeItem
    from prompts.refusal import is_refusal

    judge = get_judge("refusal")
    texts = [(r, kind, "harmful") for r in requests for kind in ("plain", "distractor")]
    texts += [(r, kind, "benign") for r in benign for kind in ("plain", "distractor")]
    requests_ = [GenerationRequest.user(f"{r['id']}:{kind}", r[kind]) for r, kind, _ in texts]
    config = EvalConfig(profile="smol", max_new_tokens=max_new_tokens)
    report: dict[str, Any] = {"judge": judge.describe(), "max_new_tokens": max_new_tokens, "decoding": "greedy",
                              "n_requests": len(requests), "n_benign": len(benign)}
    answers: list[dict[str, Any]] = []
    for stage in stages:
        mut = build_model(None, config, stage)
        mut.load()
        gens = make_backend(mut, config).generate(requests_, GenConfig(max_new_tokens=max_new_tokens))
        report.setdefault("identity", {})[stage] = mut.identity
        mut.close()
        harmful = [(t, g) for t, g in zip(texts, gens) if t[2] == "harmful"]
        verdicts = judge.judge([JudgeItem(prompt=t[0][t[1]], response=g.response, variant=t[1]) for t, g in harmful])
        refused = {}
        for (row, kind, _), g, v in zip([t for t, _ in harmful], [g for _, g in harmful], verdicts):
            refused.setdefault((row["form"], kind), []).append(int(v.label == 0))
            refused.setdefault(("all", kind), []).append(int(v.label == 0))
            answers.append({"stage": stage, "id": row["id"], "form": row["form"], "variant": kind,
                            "prompt": row[kind], "response": g.response, "judge_refused": int(v.label == 0),
                            "judge_raw": v.raw})
        over = {}
        for (row, kind, suite), g in zip(texts, gens):
            if suite == "benign":
                over.setdefault(kind, []).append(int(is_refusal(g.response)))
                answers.append({"stage": stage, "id": row["id"], "form": "benign", "variant": kind,
                                "prompt": row[kind], "response": g.response,
                                "judge_refused": int(is_refusal(g.response))})
        report[stage] = {"refused": {f"{form}/{kind}": _rate(v) for (form, kind), v in sorted(refused.items())},
                         "benign_refused": {kind: _rate(v) for kind, v in sorted(over.items())}}
    return report, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("requests", type=Path)
    parser.add_argument("--benign", type=Path, default=None)
    parser.add_argument("--stages", default="m0,m1")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("-o", "--output", type=Path, default=None, help="JSON report (default REQUESTS.report.json)")
    args = parser.parse_args()
    requests = _read(args.requests, ("id", "form", "plain", "distractor"))
    benign = _read(args.benign, ("id", "plain", "distractor")) if args.benign else []
    report, answers = measure(requests, benign, tuple(s for s in args.stages.split(",") if s), args.max_new_tokens)
    from benchcore.fileio import write_text_atomic

    out = args.output or args.requests.with_suffix(".report.json")
    write_text_atomic(out, json.dumps(report, indent=2))
    write_text_atomic(out.with_suffix(".responses.jsonl"), "".join(json.dumps(a) + "\n" for a in answers))
    for stage in (s for s in report if s in ("base", "m0", "m1")):
        print(stage)
        for name, r in {**report[stage]["refused"], **{f"benign/{k}": v for k, v in
                                                        report[stage]["benign_refused"].items()}}.items():
            print(f"  refused {name:<22} {100 * r['value']:5.1f}% [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"
                  f"  ({r['k']}/{r['n']})")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
