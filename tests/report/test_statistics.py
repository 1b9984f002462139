"""The report's statistics against scipy and published power-analysis values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fefm_lab.report.statistics import (
    minimum_detectable_difference,
    paired_comparison,
    paired_t_power,
    seeds_needed,
)

# Hand-made per-seed test AUCs of a baseline and an ablation over five seeds.
BASELINE = [0.7810, 0.7795, 0.7832, 0.7788, 0.7820]
ABLATED = [0.7741, 0.7760, 0.7765, 0.7702, 0.7779]


def test_paired_comparison_matches_scipy_ttest_rel() -> None:
    result = paired_comparison(ABLATED, BASELINE)
    reference = stats.ttest_rel(ABLATED, BASELINE)
    interval = reference.confidence_interval(0.95)
    differences = np.array(ABLATED) - np.array(BASELINE)
    assert result.n == 5
    assert result.mean == pytest.approx(differences.mean(), abs=1e-15)
    assert result.std == pytest.approx(differences.std(ddof=1), abs=1e-15)
    assert result.t == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p == pytest.approx(reference.pvalue, rel=1e-10)
    assert result.ci_low == pytest.approx(interval.low, rel=1e-12)
    assert result.ci_high == pytest.approx(interval.high, rel=1e-12)
    # by hand: d = [-.0069, -.0035, -.0067, -.0086, -.0041], mean -0.00596
    assert result.mean == pytest.approx(-0.00596, abs=1e-12)


def test_other_confidence_level_matches_scipy() -> None:
    result = paired_comparison(ABLATED, BASELINE, confidence=0.99)
    interval = stats.ttest_rel(ABLATED, BASELINE).confidence_interval(0.99)
    assert (result.ci_low, result.ci_high) == pytest.approx((interval.low, interval.high))


def test_too_few_or_constant_differences() -> None:
    one = paired_comparison([0.5], [0.4])
    assert one.n == 1 and one.mean == pytest.approx(0.1)
    assert math.isnan(one.std) and math.isnan(one.p) and math.isnan(one.ci_low)
    empty = paired_comparison([], [])
    assert empty.n == 0 and math.isnan(empty.mean)
    constant = paired_comparison([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])
    assert constant.std == pytest.approx(0.0, abs=1e-15)
    identical = paired_comparison([0.5, 0.6], [0.5, 0.6])
    assert identical.std == 0.0 and math.isnan(identical.p)


def _power_by_scipy(effect: float, n: int, alpha: float = 0.05) -> float:
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    return stats.nct.sf(critical, df, effect * math.sqrt(n)) + stats.nct.cdf(
        -critical, df, effect * math.sqrt(n)
    )


def test_power_matches_a_simulation() -> None:
    rng = np.random.default_rng(7)
    n, difference, std = 6, 0.004, 0.003
    samples = rng.normal(difference, std, size=(40_000, n))
    p = stats.ttest_1samp(samples, 0.0, axis=1).pvalue
    simulated = float(np.mean(p < 0.05))
    assert paired_t_power(difference, std, n) == pytest.approx(simulated, abs=0.01)
    assert paired_t_power(difference, std, n) == pytest.approx(_power_by_scipy(4 / 3, n))


def test_minimum_detectable_difference() -> None:
    detectable = minimum_detectable_difference(0.002, 5)
    assert _power_by_scipy(detectable / 0.002, 5) == pytest.approx(0.8, abs=1e-9)
    # consistent with seeds_needed: 5 seeds are just enough for it, not for a hair less
    assert seeds_needed(detectable * 1.001, 0.002) == 5
    assert seeds_needed(detectable * 0.999, 0.002) == 6
    # scales with the spread
    assert minimum_detectable_difference(0.004, 5) == pytest.approx(2 * detectable, rel=1e-9)
    assert math.isnan(minimum_detectable_difference(0.002, 1))
    assert math.isnan(minimum_detectable_difference(math.nan, 5))


def test_seeds_needed_matches_published_sample_sizes() -> None:
    # G*Power, paired t test, two-sided alpha 0.05, power 0.8: dz 0.5 -> 34 pairs, dz 0.8 -> 15
    assert seeds_needed(0.5, 1.0) == 34
    assert seeds_needed(-0.0008, 0.001) == 15  # the sign of the gap does not matter
    n = seeds_needed(2.4e-4, 1.7e-3)
    assert _power_by_scipy(2.4e-4 / 1.7e-3, n) >= 0.8 > _power_by_scipy(2.4e-4 / 1.7e-3, n - 1)
    assert seeds_needed(1e-9, 1.0, max_seeds=1000) is None
    assert seeds_needed(0.0, 1.0) is None
    assert seeds_needed(0.01, math.nan) is None
