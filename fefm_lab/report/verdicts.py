"""Four verdicts per ablation and metric: better, worse, equivalent, not resolved.

The one entry point (its signature is kept stable: the adaptive-seeds sweeper calls it after
every batch of seeds)::

    study_verdicts(runs, *, margins, alpha=0.05, looks=1, metrics=("auc", "logloss"),
                   baseline="none") -> pandas.DataFrame

`runs`: one row per run with columns dataset, model, ablation, seed and one column per metric
(what `ablation_table.runs_frame` gives; a NaN leaves that seed out of that metric's
pairs). `margins`: metric -> practical margin m > 0
(`report.margin.*`; a metric such as `budget_auc` falls back to the margin of `auc`). The answer
has one row per (dataset, model, ablation other than the baseline, metric): n (paired seeds),
diff (mean paired difference d̄ = mean of x_s - baseline_s), std, ci_low / ci_high (the
simultaneous interval below), margin, level (α' below), tests (m), looks (K), verdict, settled
(verdict is not `not resolved`) and seeds_needed (below). The baseline of an ablation is `none`
of the same model, else `none` of deepfefm (as in the ablation table).

Method: simultaneous confidence intervals, Bonferroni over tests and looks. The family is every
(comparison, metric) row of the answer, m of them, over K planned looks (K = 1 for a fixed-seed
study; the sweeper passes the number of looks it plans and must not look more often). Each row
gets the two-sided t interval at level 1 - α', α' = α / (m K):

    d̄ ± t_{1-α'/2, n-1} · s / √n        (s: sample std of the n paired differences, ddof 1)

Verdict, with the margin m_metric and "better" meaning higher AUC or lower log loss:
- equivalent: the interval lies inside (-m_metric, +m_metric) (the interval-inclusion form of two
  one-sided tests, each at level α'/2). Checked first: a difference shown both nonzero and
  smaller than the margin is reported as equivalent, the practical answer.
- better / worse: the interval excludes 0, on the better / worse side.
- not resolved: anything else, and fewer than two paired seeds.
Each verdict states something about the true difference δ ("|δ| < m", "δ > 0", "δ < 0") that
holds whenever the interval covers δ. An interval misses δ with probability α' (exactly, for
normal paired differences), so by the union bound the chance of any false verdict over all m
tests and K looks is at most m K α' = α, whatever the true differences, however the looks depend
on each other, and whichever ablations get more seeds after a look.

seeds_needed: the smallest n at which an interval of the observed mean d̄ and spread s would
settle: t_{1-α'/2, n-1} · s / √n < max(|d̄|, m_metric - |d̄|) (a plug-in projection: a later
batch's mean moves, so about half the time it takes more). Equal to n when already settled;
NaN below two paired seeds or with zero spread and no verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from fefm_lab.report.statistics import (
    ALPHA,
    BETTER,
    MAX_SEEDS,
    NOT_RESOLVED,
    WORSE,
    smallest_sufficient,
)

EQUIVALENT = "equivalent"
VERDICTS = (BETTER, WORSE, EQUIVALENT, NOT_RESOLVED)
DEFAULT_METRICS = ("auc", "logloss")
BASELINE = "none"
COLUMNS = [
    "dataset", "model", "ablation", "metric", "n", "diff", "std", "ci_low", "ci_high",
    "margin", "level", "tests", "looks", "verdict", "settled", "seeds_needed",
]  # fmt: skip


def higher_is_better(metric: str) -> bool:
    """AUC-like metrics (name ending in `auc`) rise with quality; log losses fall."""
    if metric.endswith("auc"):
        return True
    if metric.endswith("logloss"):
        return False
    raise ValueError(f"metric {metric!r}: expected a name ending in 'auc' or 'logloss'")


def margin_for(margins: Mapping[str, float], metric: str) -> float:
    """The margin of `metric`, else of its base metric (`budget_auc` -> `auc`)."""
    for name in (metric, "auc" if metric.endswith("auc") else "logloss"):
        if name in margins:
            value = float(margins[name])
            if not value > 0:
                raise ValueError(f"margin of {name!r}: expected a number > 0, got {value!r}")
            return value
    raise ValueError(f"no margin for metric {metric!r}; margins given: {sorted(margins)}")


def interval_verdict(ci_low: float, ci_high: float, margin: float, higher_better: bool) -> str:
    """The verdict an interval of the difference (ablation - baseline) implies."""
    code = int(interval_codes(np.float64(ci_low), np.float64(ci_high), margin, higher_better))
    return VERDICTS[code]


def interval_codes(
    ci_low: np.ndarray, ci_high: np.ndarray, margin: float, higher_better: bool
) -> np.ndarray:
    """Vectorised `interval_verdict`: indices into VERDICTS (NaN bounds: not resolved)."""
    up, down = (0, 1) if higher_better else (1, 0)  # better / worse when the difference rises
    codes = np.full(np.shape(ci_low), VERDICTS.index(NOT_RESOLVED))
    codes = np.where(ci_high < 0, down, codes)
    codes = np.where(ci_low > 0, up, codes)
    return np.where((-margin < ci_low) & (ci_high < margin), VERDICTS.index(EQUIVALENT), codes)


def difference_intervals(
    differences: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, ci_low, ci_high) over the last axis (the seeds) of paired differences, the
    interval at 1 - level; vectorised over the leading axes (simulated studies, tests)."""
    n = differences.shape[-1]
    mean = differences.mean(axis=-1) if n else np.full(differences.shape[:-1], np.nan)
    if n < 2:
        nan = np.full(differences.shape[:-1], np.nan)
        return mean, nan, nan.copy(), nan.copy()
    std = differences.std(axis=-1, ddof=1)
    half = float(t_quantile(level, n)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def t_quantile(level: float, n: int | np.ndarray) -> float | np.ndarray:
    """t_{1-level/2, n-1}: the multiplier of s/√n in a two-sided interval at 1 - level."""
    return stats.t.ppf(1 - level / 2, np.asarray(n) - 1)


def seeds_to_settle(mean: float, std: float, n: int, margin: float, level: float) -> float:
    """Smallest n' >= n whose interval, at this mean and spread, settles (module docstring)."""
    if n < 2 or math.isnan(std):
        return math.nan
    target = max(abs(mean), margin - abs(mean))
    if std == 0:
        return float(n) if target > 0 else math.nan

    def settles(count: int) -> bool:
        return float(t_quantile(level, count)) * std / math.sqrt(count) < target

    if settles(n):
        return float(n)
    needed = smallest_sufficient(settles, n, MAX_SEEDS)
    return math.nan if needed is None else float(needed)


def _baselines(runs: pd.DataFrame, baseline: str) -> dict[tuple[str, str], pd.DataFrame]:
    groups = {key: frame for key, frame in runs.groupby(["dataset", "model"], sort=True)}
    found = {}
    for (dataset, model), frame in groups.items():
        own = frame[frame["ablation"] == baseline]
        if own.empty and (dataset, "deepfefm") in groups:
            fallback = groups[(dataset, "deepfefm")]
            own = fallback[fallback["ablation"] == baseline]
        if not own.empty:
            found[(dataset, model)] = own
    return found


def _finite(values: pd.DataFrame, reference: pd.DataFrame, seeds: pd.Index, metric: str):
    """x_s - baseline_s over `seeds`, leaving out seeds where either lacks the metric (NaN)."""
    d = values.loc[seeds, metric].to_numpy(np.float64) - reference.loc[seeds, metric].to_numpy(
        np.float64
    )
    return d[np.isfinite(d)]


def paired_differences(
    runs: pd.DataFrame, metrics: Sequence[str], baseline: str = BASELINE
) -> list[tuple[tuple[str, str, str], dict[str, np.ndarray]]]:
    """Per (dataset, model, ablation) with a baseline: metric -> differences over common seeds."""
    bases = _baselines(runs, baseline)
    pairs = []
    for (dataset, model, ablation), frame in runs.groupby(
        ["dataset", "model", "ablation"], sort=True
    ):
        base = bases.get((dataset, model))
        if base is None or (ablation == baseline and base["model"].iloc[0] == model):
            continue
        values = frame.drop_duplicates("seed", keep="last").set_index("seed")
        reference = base.drop_duplicates("seed", keep="last").set_index("seed")
        common = values.index.intersection(reference.index).sort_values()
        pairs.append(
            (
                (str(dataset), str(model), str(ablation)),
                {metric: _finite(values, reference, common, metric) for metric in metrics},
            )
        )
    return pairs


def study_verdicts(
    runs: pd.DataFrame,
    *,
    margins: Mapping[str, float],
    alpha: float = ALPHA,
    looks: int = 1,
    metrics: Sequence[str] = DEFAULT_METRICS,
    baseline: str = BASELINE,
) -> pd.DataFrame:
    """The four verdicts of every (dataset, model, ablation, metric); see the module docstring."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    if looks < 1:
        raise ValueError(f"looks: expected an integer >= 1, got {looks!r}")
    pairs = paired_differences(runs, metrics, baseline) if not runs.empty else []
    tests = len(pairs) * len(metrics)
    level = alpha / max(tests * looks, 1)
    rows = []
    for (dataset, model, ablation), differences in pairs:
        for metric in metrics:
            d = differences[metric]
            n = len(d)
            margin = margin_for(margins, metric)
            mean, std, ci_low, ci_high = (float(v) for v in difference_intervals(d, level))
            verdict = interval_verdict(ci_low, ci_high, margin, higher_is_better(metric))
            rows.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "ablation": ablation,
                    "metric": metric,
                    "n": n,
                    "diff": mean,
                    "std": std,
                    "ci_low": ci_low,
                    "ci_high": ci_high,
                    "margin": margin,
                    "level": level,
                    "tests": tests,
                    "looks": looks,
                    "verdict": verdict,
                    "settled": verdict != NOT_RESOLVED,
                    "seeds_needed": seeds_to_settle(mean, std, n, margin, level),
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)
