"""benchmark.evaluation.stats against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.evaluation import stats


# ------------------------------------------------------------------------------------------------ Wilson
def test_wilson_zero_of_ten():
    # p = 0, z^2 = 1.96^2 = 3.8416, z^2/n = 0.38416: high = (z^2/n) / (1 + z^2/n) = 0.38416 / 1.38416 = 0.27754
    lo, hi = stats.wilson(0, 10, z=1.96)
    assert lo == 0.0
    assert hi == pytest.approx(0.27754, abs=1e-5)


def test_wilson_ten_of_ten_mirrors_zero():
    lo, hi = stats.wilson(10, 10, z=1.96)
    assert hi == 1.0
    assert lo == pytest.approx(1 - 0.27754, abs=1e-5)


def test_wilson_three_of_ten():
    # centre = (0.3 + 3.8416/20) / 1.38416 = 0.49208 / 1.38416 = 0.355508
    # half   = (1.96 / 1.38416) * sqrt(0.3*0.7/10 + 3.8416/400) = 1.416021 * sqrt(0.030604) = 0.247720
    lo, hi = stats.wilson(3, 10, z=1.96)
    assert lo == pytest.approx(0.355508 - 0.247720, abs=1e-5)  # 0.10779
    assert hi == pytest.approx(0.355508 + 0.247720, abs=1e-5)  # 0.60323


def test_wilson_empty_is_nan():
    lo, hi = stats.wilson(0, 0)
    assert math.isnan(lo) and math.isnan(hi)


# ------------------------------------------------------------------------------------------------ rate
def _half_and_half(n_prompts: int = 20, per_prompt: int = 100) -> dict[str, list[float]]:
    return {f"p{i:02d}": [1.0 if i % 2 == 0 else 0.0] * per_prompt for i in range(n_prompts)}


def test_cluster_bootstrap_sees_between_prompt_variance():
    data = _half_and_half()
    est = stats.rate(data, n_boot=4000, seed=1)
    assert est.method == "cluster_bootstrap"
    assert est.value == 0.5
    assert (est.n_prompts, est.n_samples) == (20, 2000)
    iid_lo, iid_hi = stats.wilson(1000, 2000)  # pretending 2000 independent samples: about +-0.022
    prompt_lo, prompt_hi = stats.wilson(10, 20)  # the prompt count is what is really informative: [0.299, 0.701]
    width = est.ci_high - est.ci_low
    assert width > 5 * (iid_hi - iid_lo)
    assert width == pytest.approx(prompt_hi - prompt_lo, abs=0.08)
    assert est.ci_low == pytest.approx(prompt_lo, abs=0.06)
    assert est.ci_high == pytest.approx(prompt_hi, abs=0.06)


def test_iid_like_data_gives_narrow_interval():
    rng = np.random.default_rng(3)
    data = {f"p{i}": list((rng.random(100) < 0.3).astype(float)) for i in range(40)}
    est = stats.rate(data, n_boot=2000, seed=0)
    lo, hi = stats.wilson(est.value * est.n_samples, est.n_samples)
    # no clustering: the cluster bootstrap agrees with the iid interval to within sampling noise
    assert est.ci_high - est.ci_low == pytest.approx(hi - lo, rel=0.3)


def test_rate_zero_uses_wilson_not_a_zero_width_interval():
    data = {f"p{i}": [0.0] * 100 for i in range(12)}
    est = stats.rate(data)
    assert est.method == "wilson"
    assert est.value == 0.0 and est.ci_low == 0.0
    # nothing to estimate clustering from -> design effect 1 -> Wilson(0, 1200): high = z2/n / (1 + z2/n)
    z2 = stats.Z95**2
    assert est.ci_high == pytest.approx((z2 / 1200) / (1 + z2 / 1200), rel=1e-9)


def test_rate_one_uses_wilson():
    est = stats.rate({"a": [1, 1, 1], "b": [1, 1]})
    assert est.method == "wilson" and est.value == 1.0 and est.ci_high == 1.0 and est.ci_low < 1.0


def test_few_positives_use_wilson_with_design_effect():
    # 3 positives, all in one of 50 prompts of 100 samples: strongly clustered.
    data = {f"p{i:02d}": [0.0] * 100 for i in range(50)}
    data["p00"] = [1.0] * 3 + [0.0] * 97
    est = stats.rate(data)
    assert est.method == "wilson"
    assert est.value == pytest.approx(3 / 5000)
    # hand computation of the ANOVA ICC: MSB = 0.0882/49 = 0.0018, MSW = 2.91/4950 = 0.000588, n0 = 100,
    # ICC = (0.0018 - 0.000588) / (0.0018 + 99 * 0.000588) = 0.0202, deff = 1 + 99 * 0.0202 = 3.0, n_eff = 1667
    c = stats._clusters(data)
    assert stats.intraclass_correlation(c) == pytest.approx(0.0202, abs=5e-4)
    assert stats.effective_sample_size(c) == pytest.approx(5000 / 3.0, rel=0.02)
    iid = stats.wilson(3, 5000)
    assert est.ci_high > iid[1]  # wider than pretending the samples were independent


def test_failures_excluded_and_counted():
    nan = float("nan")
    data = {"a": [1.0, 0.0, nan, 0.0] * 5, "b": [0.0, nan, 1.0, 1.0] * 5, "c": [nan, nan]}
    est = stats.rate(data, n_boot=500)
    assert stats.count_failures(data) == 12
    assert est.n_failed == 12
    assert est.n_samples == 30  # 15 valid in a, 15 in b, none in c
    assert est.n_prompts == 2  # c has no valid label
    assert est.value == pytest.approx((5 + 10) / 30)  # a failure is neither safe nor harmful


def test_all_failures_give_nan_not_safe():
    est = stats.rate({"a": [float("nan")] * 3})
    assert math.isnan(est.value) and est.n_samples == 0 and est.n_failed == 3
    assert est.to_dict()["value"] is None


def test_rate_deterministic_by_seed_and_order():
    rng = np.random.default_rng(7)
    data = {f"p{i}": list((rng.random(30) < rng.random()).astype(float)) for i in range(25)}
    a = stats.rate(data, seed=5)
    b = stats.rate(dict(reversed(list(data.items()))), seed=5)
    c = stats.rate(data, seed=6)
    assert a == b
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)


def test_estimate_to_dict_is_json_safe():
    d = stats.rate(_half_and_half(), n_boot=200).to_dict()
    assert set(d) >= {"value", "ci_low", "ci_high", "n_prompts", "n_samples", "method", "higher_is_better"}
    assert d["higher_is_better"] is False


# ------------------------------------------------------------------------------------------------ paired
def test_paired_difference_identical_is_exactly_zero():
    data = _half_and_half()
    est = stats.paired_difference(data, data, n_boot=500, seed=0)
    assert (est.value, est.ci_low, est.ci_high) == (0.0, 0.0, 0.0)


def test_paired_difference_is_tighter_than_unpaired():
    # b = a with 10% extra harm on every prompt: pairing removes the large between-prompt variance
    rng = np.random.default_rng(11)
    a, b = {}, {}
    for i in range(30):
        base = rng.random(100) < (0.8 if i % 2 else 0.1)
        extra = rng.random(100) < 0.1
        a[f"p{i}"] = list(base.astype(float))
        b[f"p{i}"] = list((base | extra).astype(float))
    est = stats.paired_difference(b, a, n_boot=2000, seed=0)
    ra, rb = stats.rate(a), stats.rate(b)
    assert est.value == pytest.approx(rb.value - ra.value)
    assert 0 < est.ci_low < est.value < est.ci_high
    assert est.ci_high - est.ci_low < 0.5 * ((ra.ci_high - ra.ci_low) + (rb.ci_high - rb.ci_low))


def test_paired_uses_only_shared_prompts():
    a = {"x": [1.0, 1.0], "y": [0.0, 0.0], "only_a": [1.0] * 50}
    b = {"x": [0.0, 0.0], "y": [0.0, 0.0], "only_b": [1.0] * 50}
    est = stats.paired_difference(a, b, n_boot=200)
    assert est.n_prompts == 2 and est.value == pytest.approx(0.5) and est.n_samples == 8


def test_trigger_gap_and_relative_reduction_and_ratio():
    distractor = {f"s{i}": [1.0] * 2 + [0.0] * 8 for i in range(10)}  # 0.2
    base = {f"s{i}": [0.0] * 10 for i in range(10)}
    gap = stats.trigger_gap(distractor, base, n_boot=200)
    assert gap.value == pytest.approx(0.2) and gap.higher_is_better is False

    treated = {f"s{i}": [1.0] + [0.0] * 9 for i in range(10)}  # 0.1 -> half the harm removed
    red = stats.relative_reduction(treated, distractor, n_boot=200)
    assert red.value == pytest.approx(0.5) and red.higher_is_better is True
    assert red.ci_low <= 0.5 <= red.ci_high

    cap_t = {f"q{i}": [0.6] for i in range(10)}
    cap_r = {f"q{i}": [0.8] for i in range(10)}
    kept = stats.ratio(cap_t, cap_r, n_boot=200)
    assert kept.value == pytest.approx(0.75) and (kept.ci_low, kept.ci_high) == pytest.approx((0.75, 0.75))


def test_relative_reduction_without_reference_harm_is_nan():
    zero = {f"s{i}": [0.0] * 5 for i in range(5)}
    assert math.isnan(stats.relative_reduction(zero, zero, n_boot=100).value)


# ------------------------------------------------------------------------------------------------ ranks
def test_rank_groups_lower_is_better():
    entries = [
        ("a", 0.01, 0.03, 0.02),
        ("b", 0.02, 0.05, 0.03),  # overlaps a -> shares rank 1
        ("c", 0.04, 0.08, 0.06),  # a lies entirely below (0.03 < 0.04); b overlaps -> rank 2
        ("d", 0.10, 0.12, 0.11),  # a, b, c all entirely better -> rank 4
    ]
    assert stats.rank_groups(entries, higher_is_better=False) == [1, 1, 2, 4]


def test_rank_groups_higher_is_better_and_missing():
    entries = [("a", 0.7, 0.9, 0.8), ("b", 0.1, 0.3, 0.2), ("c", 0.25, 0.75, 0.5), ("d", None, None, None)]
    assert stats.rank_groups(entries, higher_is_better=True) == [1, 2, 1, 4]


def test_zero_width_bootstrap_falls_back_to_wilson():
    # every prompt has exactly 5 of 10: every replicate is 0.5, so the bootstrap interval has zero width.
    # The ICC is negative (less spread than binomial), clamped to 0 -> design effect 1 -> Wilson(100, 200).
    data = {f"p{i}": [1.0] * 5 + [0.0] * 5 for i in range(20)}
    est = stats.rate(data, n_boot=300)
    assert est.method == "wilson"
    assert (est.ci_low, est.ci_high) == pytest.approx(stats.wilson(100, 200))
