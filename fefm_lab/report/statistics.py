"""Paired comparisons over seeds: confidence interval, p-value, resolving power.

An ablation and its baseline run with the same seeds (same split, same initialisation stream), so
the comparison is paired: d_s = x_s - baseline_s over the n seeds both have, with mean d̄ and
sample standard deviation s (ddof 1).

- 95% confidence interval of the mean difference: d̄ ± t_{0.975, n-1} · s / √n.
- Paired t statistic t = d̄ / (s / √n), two-sided p-value 2 · P(T_{n-1} > |t|).
- The verdicts (better / worse / equivalent / not resolved) are fefm_lab.report.verdicts'.
- Power of the two-sided paired t test for a true difference δ: with the noncentral t
  distribution T' ~ t_{n-1}(λ = δ √n / s), power = P(T' > t_c) + P(T' < -t_c), t_c = t_{1-α/2, n-1}.
  The smallest difference these seeds resolve is the δ with power 0.8; the seeds a gap δ needs
  are the smallest n with power >= 0.8, both at the observed spread s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 1_000_000
BETTER, WORSE, NOT_RESOLVED = "better", "worse", "not resolved"


@dataclass(frozen=True)
class PairedComparison:
    """The paired difference (ablation - baseline) of one metric over n common seeds."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    t: float
    p: float

    @property
    def ci_half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def paired_comparison(
    values: Sequence[float], baseline: Sequence[float], confidence: float = 1 - ALPHA
) -> PairedComparison:
    """Paired t comparison of `values` against `baseline` (same order: the same seeds).

    Fewer than two pairs give NaN spread, interval and p. Identical differences (s = 0) give a
    zero-width interval and p = 0 unless the mean is 0 (then p is NaN: nothing to test).
    """
    differences = np.asarray(values, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    n = len(differences)
    if n == 0:
        return PairedComparison(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    mean = float(differences.mean())
    if n < 2:
        return PairedComparison(1, mean, math.nan, math.nan, math.nan, math.nan, math.nan)
    std = float(differences.std(ddof=1))
    if std == 0.0:
        t, p = (math.nan, math.nan) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
        return PairedComparison(n, mean, 0.0, mean, mean, t, p)
    standard_error = std / math.sqrt(n)
    t = mean / standard_error
    p = float(2 * stats.t.sf(abs(t), n - 1))
    half_width = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * standard_error
    return PairedComparison(n, mean, std, mean - half_width, mean + half_width, t, p)


def paired_t_power(difference: float, std: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t test at level alpha for a true mean difference."""
    if n < 2:
        return math.nan
    df = n - 1
    critical = float(stats.t.ppf(1 - alpha / 2, df))
    noncentrality = abs(difference) * math.sqrt(n) / std
    upper = float(stats.nct.sf(critical, df, noncentrality))
    lower = float(stats.nct.cdf(-critical, df, noncentrality))
    # scipy's lower tail underflows to NaN for a large noncentrality, where it is below 1e-15.
    return upper + (0.0 if math.isnan(lower) else lower)


def minimum_detectable_difference(
    std: float, n: int, alpha: float = ALPHA, power: float = POWER
) -> float:
    """The smallest |difference| n paired seeds detect with `power` at spread `std`.

    NaN when n < 2 or the spread is not positive (nothing to scale).
    """
    if n < 2 or not std > 0 or math.isnan(std):
        return math.nan

    def shortfall(effect_size: float) -> float:  # in units of std
        return paired_t_power(effect_size, 1.0, n, alpha) - power

    upper = 1.0
    while shortfall(upper) < 0:
        upper *= 2
    return float(optimize.brentq(shortfall, 0.0, upper, xtol=1e-12)) * std


def seeds_needed(
    difference: float,
    std: float,
    alpha: float = ALPHA,
    power: float = POWER,
    max_seeds: int = MAX_SEEDS,
) -> int | None:
    """Smallest n >= 2 paired seeds whose test has `power` for `difference` at spread `std`.

    None when no n up to `max_seeds` suffices (or the inputs cannot say: zero difference, NaN).
    """
    if math.isnan(difference) or math.isnan(std) or difference == 0 or std < 0:
        return None
    if std == 0:
        return 2

    def enough(n: int) -> bool:
        return paired_t_power(difference, std, n, alpha) >= power

    return smallest_sufficient(enough, 1, max_seeds)


def smallest_sufficient(enough: Callable[[int], bool], low: int, max_n: int) -> int | None:
    """The smallest n > `low` with `enough(n)`, for an `enough` that stays true once true
    (`low` itself is known not to be enough): double until enough, then bisect. None when no
    n up to `max_n` is enough."""
    high = max(2 * low, low + 1)
    while not enough(high):
        if high >= max_n:
            return None
        low, high = high, min(2 * high, max_n)
    while high - low > 1:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle
    return high
