"""Judge delta, the simplest attribution baseline: score a pair by how much more harmful its chosen side is than its
rejected side, each side graded by a judge. It reads responses, not weights, so it lives with the judges; and
`attribute` here is the one entry point that runs every method (the activation, gradient and random methods come
from `organism.attribution`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from organism.attribution.methods import AttributeConfig, finish_run, prepare_inputs, view_rows
from organism.attribution.methods import attribute as attribute_from_weights
from organism.data.ranking import Ranking

__all__ = ["attribute", "judge_delta_ranking"]


def judge_delta_ranking(rows: Sequence[Mapping[str, str]], judge: Any,
                        parameters: Mapping[str, Any] | None = None, *, batch: int = 256,
                        progress: Callable[[int], None] | None = None) -> Ranking:
    """score = harm(chosen) - harm(rejected), each judged separately.

    A judge failure on either side leaves the pair's delta unknown: never treated as safe. Those pairs are ranked
    after every judged pair (score = lowest judged delta - 1, ties by id) and counted in parameters.judge_failures.
    """
    from benchmark.judges.base import JudgeItem

    items = []
    for r in rows:
        items.append(JudgeItem(prompt=r["prompt"], response=r["chosen"], id=f"{r['id']}/chosen"))
        items.append(JudgeItem(prompt=r["prompt"], response=r["rejected"], id=f"{r['id']}/rejected"))
    verdicts = []
    for start in range(0, len(items), batch):
        verdicts.extend(judge.judge(items[start: start + batch]))
        if progress is not None:
            progress(len(verdicts))  # responses judged (two per pair)
    deltas: list[float | None] = []
    for i in range(len(rows)):
        c, r = verdicts[2 * i], verdicts[2 * i + 1]
        deltas.append(None if c.failed or r.failed else float(c.score) - float(r.score))
    known = [d for d in deltas if d is not None]
    floor = (min(known) if known else 0.0) - 1.0
    failures = sum(1 for d in deltas if d is None)
    describe = judge.describe() if hasattr(judge, "describe") else {"name": getattr(judge, "name", "?")}
    params = {**dict(parameters or {}), "judge": describe, "judge_failures": failures}
    return Ranking.from_scores("judge-delta", params,
                               [(str(r["id"]), floor if d is None else d) for r, d in zip(rows, deltas)])


def attribute(spec: AttributeConfig, *, progress: Callable[[int], None] | None = None) -> Ranking:
    """Any method's Ranking (written to spec.out when given): judge delta here, the rest by
    `organism.attribution.attribute`. Inputs are checked before a judge or model loads."""
    if spec.method != "judge":
        return attribute_from_weights(spec, progress=progress)
    from benchmark.judges import get_judge

    inputs = prepare_inputs(spec)
    judge = get_judge(spec.judge, **dict(spec.judge_options))
    ranking = judge_delta_ranking(view_rows(inputs.pset, spec.limit), judge, inputs.base, progress=progress)
    return finish_run(spec, ranking)
