"""The four verdicts on hand-built studies, against scipy's t intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fefm_lab.report.statistics import BETTER, NOT_RESOLVED, WORSE
from fefm_lab.report.verdicts import (
    COLUMNS,
    EQUIVALENT,
    interval_verdict,
    seeds_to_settle,
    study_verdicts,
    t_quantile,
)

MARGINS = {"auc": 0.001, "logloss": 0.001}
BASE_AUC = [0.80, 0.81, 0.79, 0.80]
BASE_LOGLOSS = [0.45, 0.44, 0.46, 0.45]
# ablation -> (AUC differences, log loss differences) to the baseline over seeds 1-4
DIFFERENCES = {
    "harmful": ([-0.010, -0.012, -0.011, -0.009], [0.004, 0.006, 0.005, 0.005]),
    "same": ([0.0001, -0.0001, 0.0002, 0.0], [0.002, -0.003, 0.004, -0.002]),
}


def _runs() -> pd.DataFrame:
    rows = []
    for seed, auc, logloss in zip((1, 2, 3, 4), BASE_AUC, BASE_LOGLOSS, strict=True):
        rows.append(("none", seed, auc, logloss))
    for ablation, (auc_d, logloss_d) in DIFFERENCES.items():
        for i, seed in enumerate((1, 2, 3, 4)):
            rows.append((ablation, seed, BASE_AUC[i] + auc_d[i], BASE_LOGLOSS[i] + logloss_d[i]))
    rows.append(("one_seed", 1, 0.70, 0.50))
    frame = pd.DataFrame(rows, columns=["ablation", "seed", "auc", "logloss"])
    frame.insert(0, "model", "deepfefm")
    frame.insert(0, "dataset", "synthetic")
    return frame


def _row(table: pd.DataFrame, ablation: str, metric: str) -> pd.Series:
    match = table[(table["ablation"] == ablation) & (table["metric"] == metric)]
    assert len(match) == 1
    return match.iloc[0]


def test_verdicts_of_a_hand_built_study_match_scipy_intervals() -> None:
    table = study_verdicts(_runs(), margins=MARGINS, alpha=0.05)
    assert list(table.columns) == COLUMNS
    # 3 ablations x 2 metrics: the one-seed ablation counts as a test the report makes
    assert len(table) == 6 and set(table["tests"]) == {6} and set(table["looks"]) == {1}
    level = 0.05 / 6
    assert table["level"].to_numpy() == pytest.approx([level] * 6, rel=1e-15)
    for ablation, metric, verdict in (
        ("harmful", "auc", WORSE),
        ("harmful", "logloss", WORSE),  # higher log loss
        ("same", "auc", EQUIVALENT),
        ("same", "logloss", NOT_RESOLVED),
    ):
        row = _row(table, ablation, metric)
        d = np.array(DIFFERENCES[ablation][0 if metric == "auc" else 1])
        ci = stats.ttest_1samp(d, 0.0).confidence_interval(1 - level)
        assert row["n"] == 4 and row["diff"] == pytest.approx(d.mean(), abs=1e-15)
        assert row["std"] == pytest.approx(d.std(ddof=1), rel=1e-9)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
        assert row["verdict"] == verdict and row["settled"] == (verdict != NOT_RESOLVED)
    # by hand: harmful AUC mean -0.0105, std sqrt(5e-6 / 3); t_{1 - 0.05/12, 3} = 6.2315...
    harmful = _row(table, "harmful", "auc")
    assert harmful["diff"] == pytest.approx(-0.0105, abs=1e-12)
    assert harmful["std"] == pytest.approx(math.sqrt(5e-6 / 3), rel=1e-9)
    assert float(t_quantile(level, 4)) == pytest.approx(6.231543, abs=1e-6)
    one = _row(table, "one_seed", "auc")
    assert one["n"] == 1 and one["verdict"] == NOT_RESOLVED and not one["settled"]
    assert one["diff"] == pytest.approx(0.70 - 0.80) and math.isnan(one["ci_low"])
    assert math.isnan(one["seeds_needed"])


def test_more_looks_widen_every_interval() -> None:
    once = study_verdicts(_runs(), margins=MARGINS, alpha=0.05)
    many = study_verdicts(_runs(), margins=MARGINS, alpha=0.05, looks=16)
    assert many["level"].to_numpy() == pytest.approx([0.05 / 96] * 6, rel=1e-15)
    same = _row(many, "same", "auc")
    ci = stats.ttest_1samp(np.array(DIFFERENCES["same"][0]), 0.0).confidence_interval(1 - 0.05 / 96)
    assert (same["ci_low"], same["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    widths = (many["ci_high"] - many["ci_low"]) / (once["ci_high"] - once["ci_low"])
    assert (widths.dropna() > 1).all()
    # planned for 16 looks, the equivalence of `same` (interval 0.00005 +- 0.00104) is no
    # longer shown at 4 seeds
    assert same["verdict"] == NOT_RESOLVED and same["ci_high"] == pytest.approx(
        0.00108949, rel=1e-5
    )


def test_margins_decide_equivalence_and_are_per_metric() -> None:
    wide = study_verdicts(_runs(), margins={"auc": 0.001, "logloss": 0.02})
    assert _row(wide, "same", "logloss")["verdict"] == EQUIVALENT
    assert _row(wide, "same", "logloss")["margin"] == 0.02
    with pytest.raises(ValueError, match="no margin for metric 'logloss'"):
        study_verdicts(_runs(), margins={"auc": 0.001})
    with pytest.raises(ValueError, match="margin of 'auc': expected a number > 0"):
        study_verdicts(_runs(), margins={"auc": 0.0, "logloss": 0.001})
    # a budget metric takes its base metric's margin unless it has its own
    runs = _runs().assign(budget_auc=lambda f: f["auc"])
    budget = study_verdicts(runs, margins=MARGINS, metrics=("auc", "budget_auc"))
    assert set(budget["margin"]) == {0.001} and set(budget["tests"]) == {6}
    assert list(_row(budget, "same", "budget_auc")[["verdict", "diff"]]) == list(
        _row(budget, "same", "auc")[["verdict", "diff"]]
    )


def test_interval_verdict_boundaries_and_directions() -> None:
    assert interval_verdict(0.0002, 0.0008, 0.001, True) == EQUIVALENT  # nonzero, but small
    assert interval_verdict(-0.001, 0.0005, 0.001, True) == NOT_RESOLVED  # margins are open
    assert interval_verdict(0.0002, 0.0011, 0.001, True) == BETTER
    assert interval_verdict(0.0002, 0.0011, 0.001, False) == WORSE  # log loss rose
    assert interval_verdict(-0.0030, -0.0011, 0.001, True) == WORSE
    assert interval_verdict(-0.0030, -0.0011, 0.001, False) == BETTER
    assert interval_verdict(-0.0030, 0.0011, 0.001, True) == NOT_RESOLVED
    assert interval_verdict(math.nan, math.nan, 0.001, True) == NOT_RESOLVED


def test_seeds_to_settle_is_the_first_count_whose_interval_settles() -> None:
    level = 0.05 / 12

    def settles(count: int, mean: float, std: float, margin: float) -> bool:
        half = stats.t.ppf(1 - level / 2, count - 1) * std / math.sqrt(count)
        return half < max(abs(mean), margin - abs(mean))

    for mean, std in ((0.0004, 0.002), (0.003, 0.004), (0.0, 0.0005), (0.0009, 0.001)):
        needed = seeds_to_settle(mean, std, 3, 0.001, level)
        brute = next(n for n in range(3, 100_000) if settles(n, mean, std, 0.001))
        assert needed == brute
    assert seeds_to_settle(0.0004, 0.0001, 5, 0.001, level) == 5  # already settled
    assert seeds_to_settle(0.0004, 0.0, 2, 0.001, level) == 2
    assert math.isnan(seeds_to_settle(0.0004, math.nan, 1, 0.001, level))


def test_other_models_use_their_own_baseline_else_deepfefm_none() -> None:
    runs = _runs()
    fm = runs[runs["ablation"] == "harmful"].assign(model="fm", ablation="fm_only")
    table = study_verdicts(pd.concat([runs, fm]), margins=MARGINS)
    row = _row(table, "fm_only", "auc")
    assert row["model"] == "fm" and row["diff"] == pytest.approx(-0.0105, abs=1e-12)
    own = fm.assign(ablation="none", auc=fm["auc"] + 0.01)
    table = study_verdicts(pd.concat([runs, fm, own]), margins=MARGINS)
    assert _row(table, "fm_only", "auc")["diff"] == pytest.approx(-0.01, abs=1e-12)
    assert study_verdicts(runs.iloc[:0], margins=MARGINS).empty


def test_bad_alpha_or_looks_is_refused() -> None:
    with pytest.raises(ValueError, match=r"alpha: expected a number in \(0, 1\)"):
        study_verdicts(_runs(), margins=MARGINS, alpha=1.0)
    with pytest.raises(ValueError, match="looks: expected an integer >= 1"):
        study_verdicts(_runs(), margins=MARGINS, looks=0)


def test_margins_and_alpha_are_config_keys_with_documented_defaults(tmp_path) -> None:
    from fefm_lab.config.compose import compose_config, resolve

    resolved = resolve(compose_config([f"paths.root_dir={tmp_path}"]))
    assert resolved["report"]["margin"] == {"auc": 0.001, "logloss": 0.001}
    assert resolved["report"]["alpha"] == 0.05
    table = study_verdicts(_runs(), margins=resolved["report"]["margin"])
    assert set(table["margin"]) == {0.001}
