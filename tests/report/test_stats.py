from __future__ import annotations

import math

import numpy as np
import pytest

from dsc.report import stats


def test_mean_std_known_values():
    assert stats.mean([0.6, 0.62, 0.58, 0.65]) == pytest.approx(0.6125)
    # deviations -0.0125, 0.0075, -0.0325, 0.0375 -> sum of squares 0.002675, over n - 1 = 3
    assert stats.std([0.6, 0.62, 0.58, 0.65]) == pytest.approx(math.sqrt(0.002675 / 3))
    assert math.isnan(stats.std([0.5]))
    assert math.isnan(stats.mean([]))


@pytest.mark.parametrize("t", [0.0, 0.5, 1.0, 3.0, 12.0])
def test_t_distribution_closed_forms(t):
    # df = 1 (Cauchy) and df = 2 have closed-form two-sided tails
    assert stats.t_sf_two_sided(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), abs=1e-12)
    assert stats.t_sf_two_sided(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-12)


def test_t_distribution_matches_scipy():
    sst = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4.5, 7, 30, 200):
        for t in (-8.0, -2.1, -0.3, 0.0, 0.7, 2.5, 10.0):
            assert stats.t_cdf(t, df) == pytest.approx(sst.t.cdf(t, df), abs=1e-12)
    assert stats.t_ppf(0.975, 3) == pytest.approx(sst.t.ppf(0.975, 3), abs=1e-8)


def test_paired_ttest_known_answer():
    base = [0.60, 0.62, 0.58, 0.65]
    new = [0.66, 0.65, 0.64, 0.70]
    t, df, p = stats.paired_ttest(new, base)
    # diffs 0.06 0.03 0.06 0.05: mean 0.05, sd sqrt(0.0002), t = 0.05 / (sqrt(0.0002) / 2) = 5 sqrt(2)
    assert t == pytest.approx(5 * math.sqrt(2))
    assert df == 3


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_paired_and_welch_match_scipy(n):
    sst = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(n)
    a = rng.normal(0.7, 0.05, n)
    b = a - rng.normal(0.02, 0.03, n)
    t, df, p = stats.paired_ttest(list(a), list(b))
    ref = sst.ttest_rel(a, b)
    assert t == pytest.approx(ref.statistic, rel=1e-10)
    assert p == pytest.approx(ref.pvalue, rel=1e-9)
    t, df, p = stats.welch_ttest(list(a), list(b))
    ref = sst.ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(ref.statistic, rel=1e-10)
    assert p == pytest.approx(ref.pvalue, rel=1e-9)


def test_undefined_tests_give_nan():
    assert all(math.isnan(x) for x in stats.paired_ttest([0.5], [0.4]))
    t, _, p = stats.paired_ttest([0.5, 0.6], [0.4, 0.5])   # identical differences: no variance
    assert math.isnan(t) and math.isnan(p)
    res = stats.compare({0: 0.5, 1: 0.6}, {0: 0.4, 1: 0.5})   # no zero-width "interval" either
    assert res.delta == pytest.approx(0.1) and res.ci is None and math.isnan(res.p)
    with pytest.raises(ValueError):
        stats.paired_ttest([0.1, 0.2], [0.1])


def test_equal_differences_up_to_rounding_are_not_an_interval():
    """The demo's ce/normal+ood showed "+4.2 [+4.2, +4.2]": two seeds both 3 of 72 test images better, whose
    float differences differ in the last bit. That is no spread, not a certain effect."""
    a, b = [22 / 72, 24 / 72], [19 / 72, 21 / 72]
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    assert diffs[0] != diffs[1]   # the rounding the test is about
    t, _, p = stats.paired_ttest(a, b)
    assert math.isnan(t) and math.isnan(p)
    res = stats.compare(dict(enumerate(a)), dict(enumerate(b)))
    assert res.ci is None and res.delta == pytest.approx(3 / 72)
    assert math.isnan(stats.welch_ttest([0.25, 0.25 + 1e-16], [0.2, 0.2])[0])  # 2 ulps apart


def test_compare_pairs_on_matched_seeds_only():
    base = {0: 0.60, 1: 0.62, 2: 0.58, 3: 0.65}
    new = {1: 0.65, 2: 0.64, 3: 0.70, 7: 0.10}      # seed 7 has no partner and is ignored
    res = stats.compare(new, base)
    assert res.test == "paired-t" and res.n == 3
    assert res.delta == pytest.approx((0.03 + 0.06 + 0.05) / 3)
    # t-interval of the diffs 0.03, 0.06, 0.05: mean ± t(0.975, 2) sd / sqrt(3)
    half = stats.t_ppf(0.975, 2) * stats.std([0.03, 0.06, 0.05]) / math.sqrt(3)
    assert res.ci == pytest.approx((res.delta - half, res.delta + half))
    assert res.exploratory and res.as_dict()["exploratory"] is True


def test_compare_falls_back_to_welch_without_matching_seeds():
    sst = pytest.importorskip("scipy.stats")
    res = stats.compare({10: 0.7, 11: 0.72}, {0: 0.6, 1: 0.61})
    assert res.test == "welch-t" and res.delta == pytest.approx(0.105)
    ref = sst.ttest_ind([0.7, 0.72], [0.6, 0.61], equal_var=False).confidence_interval(0.95)
    assert res.ci == pytest.approx((ref.low, ref.high), rel=1e-8)
    one = stats.compare({10: 0.7}, {0: 0.6})
    assert one.test == "none" and one.delta == pytest.approx(0.1) and one.ci is None


@pytest.mark.parametrize("n", [2, 3, 7])
def test_paired_t_interval_matches_scipy(n):
    sst = pytest.importorskip("scipy.stats")
    diffs = np.random.default_rng(n).normal(0.02, 0.03, n)
    ref = sst.ttest_1samp(diffs, 0.0).confidence_interval(0.9)
    assert stats.paired_t_interval(list(diffs), 0.9) == pytest.approx((ref.low, ref.high), rel=1e-8)
    assert stats.paired_t_interval([0.1]) is None


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_interval_covers_the_true_difference_at_its_nominal_rate(n):
    """20,000 simulated studies of n seeds (normal paired differences): the 95 % interval must contain the
    true mean difference 95 % ± 2 points of the time. A percentile bootstrap of the mean covers it about
    50 % (n = 2) and 75 % (n = 3) of the time."""
    rng = np.random.default_rng(1000 + n)
    true_delta, sd = 0.02, 0.03
    diffs = rng.normal(true_delta, sd, size=(20_000, n))
    lo, hi = stats.t_interval(diffs, 0.95)
    coverage = float(np.mean((lo <= true_delta) & (true_delta <= hi)))
    assert abs(coverage - 0.95) <= 0.02, coverage
    # the report's scalar path gives the same interval as the vectorised one
    assert stats.compare({s: d for s, d in enumerate(diffs[0])}, dict.fromkeys(range(n), 0.0)).ci == \
        pytest.approx((lo[0], hi[0]))


def test_holm_known_values():
    # sorted 0.01, 0.02, 0.04 with m = 3: 0.03, max(0.03, 0.04) = 0.04, max(0.04, 0.04) = 0.04
    assert stats.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert stats.holm([0.5, None, float("nan"), 0.001]) == [pytest.approx(0.5), None, None, pytest.approx(0.002)]
    assert stats.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])     # capped at 1
    assert stats.holm([]) == []


def test_marks():
    assert stats.mark(0.0005) == "***"
    assert stats.mark(0.005) == "**"
    assert stats.mark(0.03) == "*"
    assert stats.mark(0.2) == "n.s."
    assert stats.mark(None) == "" and stats.mark(float("nan")) == ""
    assert stats.mark(0.03, alpha=0.01) == "n.s."
    assert stats.mark(0.005, n=stats.MIN_SEEDS) == "**"


def test_no_marks_below_five_seeds():
    """Two seeds with differences of 6.1 and 6.0 pp give p = 0.005: no "**" for n = 2, only exploratory."""
    res = stats.compare({0: 0.661, 1: 0.660}, {0: 0.600, 1: 0.600})
    assert res.p == pytest.approx(0.0052, abs=1e-4)
    assert res.exploratory and stats.mark(res.p, 0.05, res.n) == ""
    lo, hi = res.ci
    assert lo < 0.0605 < hi and hi - lo > 0.005            # t(0.975, 1) = 12.7: a wide interval at n = 2
