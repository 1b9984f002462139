"""The ablation table's numbers, checked against float64 references computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fefm_lab.markdown import fixed_decimals, markdown_table
from fefm_lab.report.ablation import ablation_table, latest_per_seed, paired
from fefm_lab.report.paper import paper_numbers, paper_settings
from fefm_lab.report.write import readable_table, report_markdown

BASE_AUC = {1: 0.80, 2: 0.81, 3: 0.79}
ABLATED_AUC = {1: 0.795, 2: 0.806, 3: 0.788}
BASE_LOSS = {1: 0.45, 2: 0.44, 3: 0.46}
ABLATED_LOSS = {1: 0.452, 2: 0.441, 3: 0.463}


def _runs() -> pd.DataFrame:
    rows = []
    for ablation, aucs, losses in (
        ("none", BASE_AUC, BASE_LOSS),
        ("no_linear", ABLATED_AUC, ABLATED_LOSS),
    ):
        for seed in (1, 2, 3):
            rows.append(
                {
                    "dataset": "synthetic",
                    "model": "deepfefm",
                    "ablation": ablation,
                    "seed": seed,
                    "auc": aucs[seed],
                    "logloss": losses[seed],
                    "params": {},
                }
            )
    # a third ablation with only two seeds: pairs over the seeds both have
    rows += [
        {"dataset": "synthetic", "model": "deepfefm", "ablation": "shallow", "seed": s,
         "auc": a, "logloss": 0.5, "params": {}}
        for s, a in ((1, 0.70), (3, 0.72))
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_means_stds_and_differences_match_numpy() -> None:
    table = ablation_table(_runs()).set_index("ablation")
    assert list(table.index) == ["none", "no_linear", "shallow"]
    base = np.array(list(BASE_AUC.values()), dtype=np.float64)
    ablated = np.array(list(ABLATED_AUC.values()), dtype=np.float64)
    row = table.loc["no_linear"]
    assert row["runs"] == 3
    assert row["auc_mean"] == pytest.approx(ablated.mean(), abs=1e-15)
    assert row["auc_std"] == pytest.approx(ablated.std(ddof=1), abs=1e-15)
    assert row["auc_diff"] == pytest.approx(ablated.mean() - base.mean(), abs=1e-15)
    differences = ablated - base
    assert row["auc_paired_n"] == 3
    assert row["auc_paired_diff"] == pytest.approx(differences.mean(), abs=1e-15)
    assert row["auc_paired_std"] == pytest.approx(differences.std(ddof=1), abs=1e-15)
    reference = stats.ttest_rel(ablated, base)
    assert row["auc_t"] == pytest.approx(reference.statistic, rel=1e-12)
    assert row["auc_p"] == pytest.approx(reference.pvalue, rel=1e-9)
    assert table.loc["none", "auc_diff"] == 0.0
    assert math.isnan(table.loc["none", "auc_t"])


def test_pairs_only_common_seeds() -> None:
    row = ablation_table(_runs()).set_index("ablation").loc["shallow"]
    assert row["runs"] == 2 and row["seeds"] == "1,3"
    assert row["auc_paired_n"] == 2
    assert row["auc_paired_diff"] == pytest.approx(((0.70 - 0.80) + (0.72 - 0.79)) / 2)
    # difference of means uses all baseline seeds
    assert row["auc_diff"] == pytest.approx(0.71 - np.mean(list(BASE_AUC.values())))


def test_paired_with_one_seed_has_no_statistic() -> None:
    result = paired(pd.Series([0.5], index=[1]), pd.Series([0.4], index=[1]))
    assert result["paired_n"] == 1 and result["paired_diff"] == pytest.approx(0.1)
    assert math.isnan(result["paired_std"]) and math.isnan(result["t"])


def test_paper_numbers_only_for_the_paper_settings() -> None:
    settings = paper_settings("criteo")
    assert paper_numbers("criteo", "deepfefm", "no_linear", settings) == (0.81386, 0.43793)
    assert (
        paper_numbers("criteo", "deepfefm", "none", {**settings, "model.embedding_dim": "8"})
        is None
    )
    assert paper_numbers("synthetic", "deepfefm", "none", settings) is None
    assert paper_numbers("criteo", "fm", "none", settings) is None


def test_markdown_rendering() -> None:
    frame = pd.DataFrame({"name": ["a|b", "c"], "value": [0.123456, math.nan]})
    assert markdown_table(frame, float_format=fixed_decimals(3)) == (
        "| name | value |\n|---|---:|\n| a\\|b | 0.123 |\n| c |  |"
    )
    table = ablation_table(_runs())
    readable = readable_table(table).set_index("ablation")
    assert readable.loc["no_linear", "test AUC"] == "0.79633 ± 0.00907"
    assert readable.loc["no_linear", "Δ AUC"] == "-0.00367"
    assert "paper AUC" not in readable.columns
    assert "| deepfefm | no_linear | 3 |" in report_markdown(table, "t").replace("synthetic | ", "")


def test_a_rerun_with_other_settings_replaces_the_older_runs() -> None:
    runs = _runs().assign(start_time=range(len(_runs())))
    rerun = runs[runs["ablation"] == "none"].assign(
        auc=0.9, start_time=lambda f: f.start_time + 100
    )
    newest = latest_per_seed(pd.concat([runs, rerun], ignore_index=True))
    assert len(newest) == len(runs)
    assert list(newest[newest["ablation"] == "none"]["auc"]) == [0.9, 0.9, 0.9]
    table = ablation_table(newest).set_index("ablation")
    assert table.loc["none", "runs"] == 3 and table.loc["none", "auc_mean"] == pytest.approx(0.9)
