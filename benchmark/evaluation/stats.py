"""Rates with honest 95% intervals, paired differences and rank groups.

Why a cluster bootstrap: the benchmark draws many samples per prompt, and samples of one prompt are far from
independent (a prompt the model complies with tends to be complied with every time). The origin code bootstrapped
rollouts as if they were iid, which gives intervals that are too narrow and collapse to zero width at 0 or 1.
Here the unit of resampling is the prompt: each bootstrap replicate draws prompts with replacement and pools all
of their samples.

Why Wilson near the edges: a bootstrap cannot produce variation it never saw, so a rate of 0 (or very few
positives) gets a degenerate interval. There we use the Wilson score interval on an *effective* sample size that
discounts the within-prompt correlation (the design effect), see `rate`.

Judge failures are NaN labels. They are never counted as "safe": they are dropped from numerator AND denominator
and reported separately (`count_failures`, `Estimate.n_failed`).

Everything is a pure function of its inputs and a seed (numpy Generator); prompt ids are sorted before sampling
so that the order of a mapping does not change the interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

Z95 = 1.959963984540054
# Below this many positive (or negative) samples the pooled rate is "near the edge": the bootstrap has too few
# events to resample and its percentile interval is unreliable, so `rate` switches to Wilson.
EDGE_MIN_EVENTS = 5
# Bootstrap replicates are drawn in chunks so that memory stays bounded (about this many indices per chunk).
_CHUNK_CELLS = 2_000_000

LabelsByPrompt = Mapping[str, Sequence[float]]


@dataclass(frozen=True)
class Estimate:
    """A metric with its 95% interval and the sizes behind it, as written to results.json."""

    value: float
    ci_low: float
    ci_high: float
    n_prompts: int
    n_samples: int
    method: str  # "cluster_bootstrap" | "wilson"
    higher_is_better: bool
    n_failed: int = 0  # NaN labels (judge failures) left out of the estimate

    def to_dict(self) -> dict:
        """Plain JSON-safe dict: non-finite numbers become None (JSON has no NaN)."""
        out = asdict(self)
        for key in ("value", "ci_low", "ci_high"):
            v = out[key]
            out[key] = None if v is None or not math.isfinite(v) else float(v)
        return out


# ---------------------------------------------------------------------------------------------- Wilson
def wilson(k: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials; n may be fractional (an effective sample size).

    n == 0 gives (nan, nan): there is no information, and pretending otherwise is how failures became "safe".
    """
    if n <= 0:
        return (math.nan, math.nan)
    if k < 0 or k > n:
        raise ValueError(f"wilson: need 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = (z / denom) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return (low, high)


# ---------------------------------------------------------------------------------------------- clusters
@dataclass(frozen=True)
class _Clusters:
    """Per-prompt sufficient statistics over the valid (non-NaN) labels, prompts sorted by id."""

    ids: tuple[str, ...]
    k: np.ndarray  # sum of labels
    n: np.ndarray  # number of valid labels
    ss: np.ndarray  # sum of squared labels (for the within-prompt variance of non-binary labels)
    n_failed: int


def _clusters(labels_by_prompt: LabelsByPrompt, keep: set[str] | None = None) -> _Clusters:
    ids, ks, ns, sss = [], [], [], []
    failed = 0
    for pid in sorted(labels_by_prompt, key=str):
        if keep is not None and pid not in keep:
            continue
        arr = np.asarray(labels_by_prompt[pid], dtype=float).reshape(-1)
        bad = np.isnan(arr)
        failed += int(bad.sum())
        valid = arr[~bad]
        if valid.size == 0:
            continue
        ids.append(pid)
        ks.append(valid.sum())
        ns.append(valid.size)
        sss.append(np.square(valid).sum())
    return _Clusters(tuple(ids), np.asarray(ks, float), np.asarray(ns, float), np.asarray(sss, float), failed)


def count_failures(labels_by_prompt: LabelsByPrompt) -> int:
    """How many labels are NaN (judge failures); they are excluded from every rate."""
    return sum(int(np.isnan(np.asarray(v, dtype=float)).sum()) for v in labels_by_prompt.values())


def _boot_indices(n_items: int, n_boot: int, rng: np.random.Generator):
    """Yield chunks of bootstrap index rows (each row: n_items prompt indices drawn with replacement)."""
    rows = max(1, _CHUNK_CELLS // max(1, n_items))
    done = 0
    while done < n_boot:
        m = min(rows, n_boot - done)
        yield rng.integers(0, n_items, size=(m, n_items))
        done += m


def _percentile(reps: np.ndarray) -> tuple[float, float]:
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return (math.nan, math.nan)
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return (float(lo), float(hi))


def intraclass_correlation(c: _Clusters) -> float:
    """One-way ANOVA estimate of the intraclass correlation, clamped to [0, 1].

    Not estimable (fewer than 2 prompts, no within-prompt degrees of freedom, or no variance at all, e.g. a rate of
    exactly 0) -> 0, i.e. samples are treated as independent. That is the optimistic choice, made because with no
    positive sample there is nothing to measure the clustering from; the Wilson interval itself still widens as the
    count of samples shrinks.
    """
    P = c.n.size
    N = float(c.n.sum())
    if P < 2 or N - P <= 0:
        return 0.0
    p = c.k.sum() / N
    means = c.k / c.n
    msb = float(np.sum(c.n * (means - p) ** 2)) / (P - 1)
    ssw = float(np.sum(c.ss - c.n * means**2))
    msw = max(0.0, ssw) / (N - P)
    n0 = (N - float(np.sum(c.n**2)) / N) / (P - 1)
    denom = msb + (n0 - 1) * msw
    if denom <= 0:
        return 0.0
    return float(min(1.0, max(0.0, (msb - msw) / denom)))


def effective_sample_size(c: _Clusters) -> float:
    """n / design effect, clamped to [1, n].

    design effect = 1 + (m - 1) * ICC with m = sum(n_i^2) / N, the size-weighted mean prompt size (equal to the
    plain mean when every prompt has the same number of samples; the size weighting matches the pooled rate, in
    which a large prompt counts more).
    """
    N = float(c.n.sum())
    if N <= 0:
        return 0.0
    m = float(np.sum(c.n**2)) / N
    deff = 1.0 + (m - 1.0) * intraclass_correlation(c)
    return float(min(N, max(1.0, N / deff)))


# ---------------------------------------------------------------------------------------------- rate
def rate(
    labels_by_prompt: LabelsByPrompt,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    higher_is_better: bool = False,
) -> Estimate:
    """Pooled rate (sum of labels / number of valid labels) with a 95% interval.

    Interval rule, exactly:
    1. Cluster bootstrap over prompts (n_boot replicates, percentile 2.5 / 97.5) by default.
    2. Wilson instead, on an effective sample size, when ANY of:
       - fewer than EDGE_MIN_EVENTS (5) positive samples or fewer than 5 negative samples (this includes rates of
         exactly 0 and 1; for non-binary labels "positives" is the sum of labels, "negatives" n minus that sum);
       - fewer than 2 prompts (nothing to resample);
       - the bootstrap interval has zero width.
       Effective sample size n_eff = n / deff (see `effective_sample_size`), clamped to [1, n]; the Wilson count is
       rate * n_eff.
    NaN labels are judge failures: excluded from numerator and denominator and reported as `n_failed`.
    No valid label at all -> value and interval are NaN (method "wilson", as wilson(0, 0)).
    """
    c = _clusters(labels_by_prompt)
    N = float(c.n.sum())
    P = int(c.n.size)
    if N == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, 0, "wilson", higher_is_better, c.n_failed)
    k = float(c.k.sum())
    value = k / N
    near_edge = k < EDGE_MIN_EVENTS or (N - k) < EDGE_MIN_EVENTS
    lo = hi = math.nan
    if not near_edge and P >= 2:
        rng = np.random.default_rng(seed)
        reps = np.concatenate([c.k[idx].sum(1) / c.n[idx].sum(1) for idx in _boot_indices(P, n_boot, rng)])
        lo, hi = _percentile(reps)
    if near_edge or P < 2 or not (hi > lo):
        n_eff = effective_sample_size(c)
        lo, hi = wilson(value * n_eff, n_eff)
        # keep the point estimate inside its interval despite rounding
        lo, hi = min(lo, value), max(hi, value)
        return Estimate(value, lo, hi, P, int(N), "wilson", higher_is_better, c.n_failed)
    return Estimate(value, lo, hi, P, int(N), "cluster_bootstrap", higher_is_better, c.n_failed)


# ---------------------------------------------------------------------------------------------- paired
Statistic = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _paired(
    a_by_prompt: LabelsByPrompt,
    b_by_prompt: LabelsByPrompt,
    stat: Statistic,
    *,
    n_boot: int,
    seed: int,
    higher_is_better: bool,
) -> Estimate:
    """Apply stat(k_a, n_a, k_b, n_b) (pooled sums, vectorised over replicates) on the prompts both sides have.

    A prompt counts as shared when both sides have at least one valid label for it. Both sides are resampled with
    the SAME prompt indices (paired), which removes the between-prompt variance common to both.
    n_samples = valid samples of both sides on the shared prompts; n_failed = NaN labels of both sides there.
    Replicates where the statistic is undefined (e.g. a zero denominator) are dropped before taking percentiles.
    """
    ca, cb = _clusters(a_by_prompt), _clusters(b_by_prompt)
    shared = set(ca.ids) & set(cb.ids)
    ca, cb = _clusters(a_by_prompt, shared), _clusters(b_by_prompt, shared)
    P = len(shared)
    if P == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, 0, "cluster_bootstrap", higher_is_better,
                        ca.n_failed + cb.n_failed)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(stat(ca.k.sum(keepdims=True), ca.n.sum(keepdims=True),
                           cb.k.sum(keepdims=True), cb.n.sum(keepdims=True))[0])
        rng = np.random.default_rng(seed)
        reps = np.concatenate([
            stat(ca.k[idx].sum(1), ca.n[idx].sum(1), cb.k[idx].sum(1), cb.n[idx].sum(1))
            for idx in _boot_indices(P, n_boot, rng)
        ])
    lo, hi = _percentile(reps) if math.isfinite(value) else (math.nan, math.nan)
    n_samples = int(ca.n.sum() + cb.n.sum())
    return Estimate(value, lo, hi, P, n_samples, "cluster_bootstrap", higher_is_better, ca.n_failed + cb.n_failed)


def _diff(ka, na, kb, nb):
    return ka / na - kb / nb


def _ratio(ka, na, kb, nb):
    return (ka / na) / (kb / nb)


def _reduction(ka, na, kb, nb):
    return 1.0 - (ka / na) / (kb / nb)


def paired_difference(
    a_by_prompt: LabelsByPrompt,
    b_by_prompt: LabelsByPrompt,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    higher_is_better: bool = False,
) -> Estimate:
    """rate(a) - rate(b) on the prompts both have, prompts bootstrapped jointly.

    Identical inputs give exactly 0 with a zero-width interval (every replicate is 0).
    """
    return _paired(a_by_prompt, b_by_prompt, _diff, n_boot=n_boot, seed=seed, higher_is_better=higher_is_better)


def relative_reduction(
    treated: LabelsByPrompt, reference: LabelsByPrompt, *, n_boot: int = 2000, seed: int = 0
) -> Estimate:
    """1 - rate(treated) / rate(reference), paired by prompt id: the share of the reference's harm removed.

    NaN when the reference rate is 0 (nothing to remove); replicates whose reference rate is 0 are dropped.
    """
    return _paired(treated, reference, _reduction, n_boot=n_boot, seed=seed, higher_is_better=True)


def ratio(treated: LabelsByPrompt, reference: LabelsByPrompt, *, n_boot: int = 2000, seed: int = 0) -> Estimate:
    """mean(treated) / mean(reference), paired by prompt id: capability kept (1.0 = nothing lost)."""
    return _paired(treated, reference, _ratio, n_boot=n_boot, seed=seed, higher_is_better=True)


def trigger_gap(
    distractor_by_scenario: LabelsByPrompt,
    base_by_scenario: LabelsByPrompt,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> Estimate:
    """P(harmful | distractor) - P(harmful | base), paired by scenario id (both variants of one scenario)."""
    return paired_difference(distractor_by_scenario, base_by_scenario, n_boot=n_boot, seed=seed,
                             higher_is_better=False)


# ---------------------------------------------------------------------------------------------- ranks
def rank_groups(
    estimates: Sequence[tuple[str, float, float, float]], higher_is_better: bool
) -> list[int]:
    """Rank numbers for (name, low, high, value) entries, in the order given.

    An entry's rank = 1 + the number of entries whose interval lies ENTIRELY better than its own (for lower is
    better: other.high < self.low; for higher is better: other.low > self.high; touching intervals overlap).
    So entries whose intervals overlap can share a rank, and a rank says "this many entries are clearly better".
    A missing bound falls back to the value; an entry with no value ranks after every entry that has one.
    """
    spans: list[tuple[float, float] | None] = []
    for _name, low, high, value in estimates:
        if value is None or not math.isfinite(value):
            spans.append(None)
            continue
        lo = value if low is None or not math.isfinite(low) else low
        hi = value if high is None or not math.isfinite(high) else high
        spans.append((min(lo, hi), max(lo, hi)))
    n_valued = sum(s is not None for s in spans)
    ranks = []
    for mine in spans:
        if mine is None:
            ranks.append(n_valued + 1)
            continue
        if higher_is_better:
            better = sum(1 for o in spans if o is not None and o[0] > mine[1])
        else:
            better = sum(1 for o in spans if o is not None and o[1] < mine[0])
        ranks.append(1 + better)
    return ranks
