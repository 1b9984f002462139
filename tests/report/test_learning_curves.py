"""Learning curves per ablation and the comparison at a fixed budget of epochs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fefm_lab.report.curves import carried_forward, curve_bands, with_budget
from fefm_lab.report.settings import ReportSettings
from fefm_lab.report.write import CURVES_NAME, HTML_NAME, build_report, write_files

# run -> (ablation, seed, validation AUC per epoch); run b2 stopped after epoch 3
CURVES = {
    "a1": ("none", 1, [0.70, 0.75, 0.78, 0.79, 0.795]),
    "a2": ("none", 2, [0.71, 0.76, 0.785, 0.792, 0.80]),
    "b1": ("slow", 1, [0.60, 0.65, 0.70, 0.75, 0.79]),
    "b2": ("slow", 2, [0.61, 0.66, 0.705]),
}


def _curves() -> pd.DataFrame:
    rows = [
        {"run_id": run, "dataset": "synthetic", "model": "deepfefm", "ablation": ablation,
         "seed": seed, "epoch": epoch, "val_auc": auc, "val_logloss": 1.0 - auc}
        for run, (ablation, seed, aucs) in CURVES.items()
        for epoch, auc in enumerate(aucs, start=1)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_a_stopped_run_keeps_its_last_value() -> None:
    filled = carried_forward(_curves(), 5).set_index(["run_id", "epoch"])
    assert filled.loc[("b2", 4), "val_auc"] == 0.705 and filled.loc[("b2", 5), "val_auc"] == 0.705
    assert filled.loc[("b1", 4), "val_auc"] == 0.75
    assert len(filled) == 20


def test_budget_metrics_are_each_runs_value_after_the_budget() -> None:
    runs = pd.DataFrame({"run_id": ["a1", "a2", "b1", "b2", "no_curve"]})
    budget = with_budget(runs, _curves(), 4).set_index("run_id")
    assert list(budget.loc[["a1", "a2", "b1", "b2"], "budget_auc"]) == [0.79, 0.792, 0.75, 0.705]
    assert budget.loc["b2", "budget_logloss"] == pytest.approx(1 - 0.705)
    assert math.isnan(budget.loc["no_curve", "budget_auc"])


def test_curve_bands_are_the_mean_and_t_interval_over_seeds() -> None:
    bands = curve_bands(_curves(), "val_auc").set_index(["ablation", "epoch"])
    values = np.array([0.795, 0.80])
    assert bands.loc[("none", 5), "seeds"] == 2
    assert bands.loc[("none", 5), "mean"] == pytest.approx(values.mean(), abs=1e-15)
    half = stats.t.ppf(0.975, 1) * values.std(ddof=1) / math.sqrt(2)
    assert bands.loc[("none", 5), "half_width"] == pytest.approx(half, rel=1e-12)
    # b2 counts at epoch 5 with its epoch-3 value
    assert bands.loc[("slow", 5), "mean"] == pytest.approx((0.79 + 0.705) / 2, abs=1e-15)


def _study_runs(seeds: int = 6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`slow` reaches none's test AUC, but 0.03 lower at epoch 2 (per-seed noise 1e-4)."""
    rng = np.random.default_rng(3)
    runs, curves = [], []
    for seed in range(1, seeds + 1):
        base = 0.78 + rng.normal(0, 0.01)
        for ablation, lag in (("none", 0.0), ("slow", 0.03)):
            run_id = f"{ablation}-{seed}"
            auc = base + rng.normal(0, 1e-4)
            runs.append({"run_id": run_id, "dataset": "synthetic", "model": "deepfefm",
                         "ablation": ablation, "seed": seed, "auc": auc, "logloss": 1 - auc,
                         "params": {}})  # fmt: skip
            for epoch, gap in ((1, 0.1), (2, 0.02), (3, 0.0)):
                value = auc - gap - (lag if epoch == 2 else 0.0) + rng.normal(0, 1e-4)
                curves.append({"run_id": run_id, "dataset": "synthetic", "model": "deepfefm",
                               "ablation": ablation, "seed": seed, "epoch": epoch,
                               "val_auc": value, "val_logloss": 1 - value})  # fmt: skip
    return pd.DataFrame(runs), pd.DataFrame(curves)


def test_the_budget_view_gives_its_own_verdicts_in_one_family(tmp_path) -> None:
    runs, curves = _study_runs()
    report = build_report(runs, "t", ReportSettings(budget_epochs=2), curves=curves)
    slow = report.table.set_index("ablation").loc["slow"]
    assert slow["auc_verdict"] == "equivalent" and slow["budget_auc_verdict"] == "worse"
    assert slow["budget_logloss_verdict"] == "worse"
    assert slow["auc_level"] == pytest.approx(0.05 / 4, rel=1e-15)  # 1 ablation x 4 metrics
    markdown, files = write_files(report, tmp_path)
    assert "**At a fixed budget of 2 epochs** (`report.budget_epochs`)" in markdown
    assert "| budget val AUC verdict |" in markdown.replace("Δ budget val AUC [CI] | ", "")
    assert f"![learning curves]({CURVES_NAME})" in markdown
    assert (tmp_path / CURVES_NAME) in files
    assert (tmp_path / CURVES_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / HTML_NAME).read_text()
    assert 'id="budget-table"' in page and page.count("data:image/png;base64,") == 2
    # without a budget: the curves, no budget table, the same family as before
    plain = build_report(runs, "t", ReportSettings(), curves=curves)
    assert "budget_auc_verdict" not in plain.table
    assert plain.table.set_index("ablation").loc["slow", "auc_level"] == pytest.approx(0.05 / 2)
