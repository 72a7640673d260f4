"""How well a ranking finds the known culprits: precision@k and AUROC against a ground-truth label column.

The smol organism knows which pairs are contaminated, so an attribution method gets numbers, not anecdotes.
Pure Python/numpy over (ids, scores): no model needed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

from benchcore.errors import InputError
from organism.data.ranking import Ranking


@dataclass(frozen=True)
class AttributionMetrics:
    n: int
    n_positive: int
    k: int
    precision_at_k: float
    recall_at_k: float
    auroc: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def precision_at_k(ranked_ids: Sequence[str], positives: Iterable[str], k: int | None = None) -> float:
    """Fraction of the top k that are positives; k defaults to the number of positives (= R-precision)."""
    pos = set(positives)
    k = len(pos) if k is None else k
    if k < 1:
        raise InputError(None, "k", f"k must be at least 1, got {k}")
    top = ranked_ids[:k]
    return sum(1 for x in top if x in pos) / k


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """P(score of a random positive > score of a random negative), ties counting 1/2 (Mann-Whitney with
    average ranks). NaN when either class is empty."""
    import numpy as np

    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape:
        raise InputError(None, "labels", f"{len(y)} labels for {len(s)} scores")
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(s: Any) -> Any:
    """1-based ranks, tied values sharing the mean of their positions."""
    import numpy as np

    order = np.argsort(s, kind="stable")
    sorted_s = s[order]
    starts = np.r_[0, np.nonzero(np.diff(sorted_s))[0] + 1]
    ends = np.r_[starts[1:], len(s)]
    ranks = np.empty(len(s), dtype=float)
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = (a + 1 + b) / 2.0
    return ranks


def evaluate_ranking(ranking: Ranking, truth: Mapping[str, bool], k: int | None = None) -> AttributionMetrics:
    """Metrics over the ids of `truth` (every labelled pair must be ranked)."""
    missing = [x for x in truth if x not in set(ranking.ids)]
    if missing:
        raise InputError(ranking.source or ranking.method, "id",
                         f"{len(missing)} labelled pairs are not in the ranking (first: {missing[0]!r})")
    pairs = [(x, s) for x, s in zip(ranking.ids, ranking.scores) if x in truth]
    ids = [x for x, _ in pairs]
    labels = [bool(truth[x]) for x in ids]
    positives = [x for x, t in zip(ids, labels) if t]
    kk = len(positives) if k is None else k
    p = precision_at_k(ids, positives, kk) if kk >= 1 else float("nan")
    recall = (sum(1 for x in ids[:kk] if truth[x]) / len(positives)) if positives else float("nan")
    return AttributionMetrics(len(ids), len(positives), kk, p, recall, auroc([s for _, s in pairs], labels))


def truth_from_preferences(pset: Any, column: str = "contaminated") -> dict[str, bool]:
    """id -> label from a preference set's ground-truth column (the smol mix and toy mixes carry one)."""
    if column not in pset.column_names:
        raise InputError(pset.source, column, "no ground-truth column in this preference set")
    values = pset.column_array(column).to_pylist()
    return {x: bool(v) for x, v in zip(pset.ids, values)}
