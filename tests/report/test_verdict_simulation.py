"""The verdicts' error rates by simulation (item 4 of issue 19): thousands of studies, vectorised.

A false verdict states something untrue about the true difference δ. The bound is the chance of
any false verdict in a study (every comparison, every look): at most alpha, which each check
allows up to alpha plus three Monte Carlo standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fefm_lab.report.simulation import simulate_studies
from fefm_lab.report.statistics import BETTER, NOT_RESOLVED, WORSE
from fefm_lab.report.verdicts import (
    EQUIVALENT,
    VERDICTS,
    difference_intervals,
    interval_codes,
    study_verdicts,
)

ALPHA = 0.05
STUDIES = 4000
LOOKS = (3, 5, 10, 20)
TESTS = 4


def _ceiling(rate: float, studies: int) -> float:
    return rate + 3 * math.sqrt(rate * (1 - rate) / studies)


@pytest.mark.parametrize(
    "delta,sigma,power_at_least",
    [
        # measured at seed 7: studies with a false verdict, then the power (share of
        # comparisons ending with a correct verdict) and the mean seeds a comparison took
        (0.0, 0.5, 0.95),  # 0.0053; 0.999 (equivalent); 9.8 seeds
        (0.5, 0.5, 0.95),  # 0.0; 0.996 (0.68 equivalent, 0.32 better: both true); 14.0
        (2.0, 0.5, 0.99),  # 0.0; 1.0 (better); 5.3
        (0.0, 1.0, 0.6),  # 0.040; 0.69: a spread equal to the margin needs about 20 seeds
        (2.0, 1.0, 0.99),  # 0.0005; 0.9999; 8.8
    ],
)
def test_false_verdicts_stay_within_alpha_over_looks_and_comparisons(
    delta: float, sigma: float, power_at_least: float
) -> None:
    result = simulate_studies(
        delta, sigma, 1.0, looks=LOOKS, tests=TESTS, studies=STUDIES,
        rng=np.random.default_rng(7),
    )  # fmt: skip
    assert result.codes.shape == (STUDIES, TESTS)
    assert result.family_error_rate <= _ceiling(ALPHA, STUDIES)
    assert result.settled_rate >= power_at_least
    if delta == 0.0:
        assert result.share(BETTER) + result.share(WORSE) <= _ceiling(ALPHA, STUDIES)
    if delta == 2.0:
        assert result.share(WORSE) == 0.0
        assert result.share(EQUIVALENT) <= _ceiling(ALPHA / TESTS, STUDIES)
    settled = result.codes != VERDICTS.index(NOT_RESOLVED)
    # a comparison that settles stops taking seeds; only the unresolved reach the last look
    assert set(np.unique(result.seeds[~settled])) <= {LOOKS[-1]}


def test_one_look_one_test_is_exact_not_only_conservative() -> None:
    # without corrections the interval misses a zero difference in alpha of the studies ...
    zero = simulate_studies(
        0.0, 1.0, 0.1, looks=(5,), tests=1, studies=20_000, rng=np.random.default_rng(3)
    )
    se = math.sqrt(ALPHA * (1 - ALPHA) / 20_000)
    assert abs(zero.share(BETTER) + zero.share(WORSE) - ALPHA) < 3 * se
    # ... and at a true difference of exactly the margin it shows equivalence in alpha / 2
    edge = simulate_studies(
        1.0, 0.2, 1.0, looks=(8,), tests=1, studies=20_000, rng=np.random.default_rng(4)
    )
    se = math.sqrt(ALPHA / 2 * (1 - ALPHA / 2) / 20_000)
    assert abs(edge.share(EQUIVALENT) - ALPHA / 2) < 3 * se


def test_an_a_a_comparison_never_ends_better_or_worse_beyond_alpha() -> None:
    # `control` against `none`: the same flags, other seeds; pure seed noise (δ = 0). 2,000
    # studies of 6 ablations (control among them) over AUC and log loss: 12 tests per study.
    studies = 2000
    result = simulate_studies(
        0.0, 0.0005, 0.001, looks=(3, 5, 8), tests=12, studies=studies,
        rng=np.random.default_rng(11),
    )  # fmt: skip
    control = result.codes[:, 0]
    assert np.isin(control, [VERDICTS.index(BETTER), VERDICTS.index(WORSE)]).mean() <= _ceiling(
        ALPHA / 12, studies
    )
    assert result.family_error_rate <= _ceiling(ALPHA, studies)


def test_the_simulation_gives_study_verdicts_own_answers() -> None:
    # the vectorised path the simulation takes is the one study_verdicts takes, row for row
    rng = np.random.default_rng(5)
    seeds, ablations = 6, ["a", "b", "c"]
    base = rng.normal(0.8, 0.01, seeds)
    rows = [("none", s + 1, base[s], 0.4) for s in range(seeds)]
    differences = {"a": rng.normal(-0.004, 0.001, seeds), "b": rng.normal(0.0, 0.0002, seeds),
                   "c": rng.normal(0.0, 0.003, seeds)}  # fmt: skip
    for name in ablations:
        rows += [(name, s + 1, base[s] + differences[name][s], 0.4) for s in range(seeds)]
    runs = pd.DataFrame(rows, columns=["ablation", "seed", "auc", "logloss"]).assign(
        dataset="d", model="deepfefm"
    )
    table = study_verdicts(runs, margins={"auc": 0.001}, metrics=("auc",))
    assert list(table["verdict"]) == [WORSE, EQUIVALENT, NOT_RESOLVED]
    stacked = np.stack([differences[name] for name in ablations])
    _, _, low, high = difference_intervals(stacked, ALPHA / 3)
    codes = interval_codes(low, high, 0.001, higher_better=True)
    assert [VERDICTS[c] for c in codes] == list(table["verdict"])
    assert low == pytest.approx(table["ci_low"].to_numpy(), rel=1e-12)
