"""The open CTR benchmark's published test numbers (BARS, Zhu et al. 2022, on FuxiCTR) and a
study's results beside them.

`PUBLISHED` states each number once, with where it comes from and how many runs it is: the
BARS page of each model and dataset (github.com/reczoo/BARS, ranking/ctr/<Model>/<Model>_<data>)
gives either one run (seed 2021) or five seeds' mean and std. The leaderboards
(docs/CTR/leaderboard/<data>.csv) list the seed-2021 run, also where five were made (DeepFM
0.8137, DCN-V2 0.8142 on Criteo_x1), so the five-seed means here are the better comparison.

Beside a study: per dataset and model, our mean test metric over seeds with its 95% t interval
(x̄ ± t_{0.975, n-1} s / √n) and the published value. Δ = ours - published; where the published
value is a mean of m >= 2 runs, Δ gets Welch's 95% interval (s²/n + s_p²/m under a t with
Welch-Satterthwaite degrees of freedom), else only ours: a single published run has no seed
spread, which the flag says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from fefm_lab.report.statistics import ALPHA

BARS = "https://github.com/reczoo/BARS/tree/main/ranking/ctr"


@dataclass(frozen=True)
class Published:
    """One published test result: AUC and log loss, the runs behind them and their source."""

    auc: float
    logloss: float
    runs: int
    auc_std: float = math.nan
    logloss_std: float = math.nan
    page: str = ""

    @property
    def source(self) -> str:
        return f"{BARS}/{self.page}"


def _one(auc: float, logloss: float, page: str) -> Published:
    return Published(auc, logloss, 1, page=page)


def _five(auc: float, auc_std: float, logloss: float, logloss_std: float, page: str) -> Published:
    return Published(auc, logloss, 5, auc_std, logloss_std, page)


# (dataset preset, fefm-lab model) -> published test numbers; every model both have.
PUBLISHED: dict[tuple[str, str], Published] = {
    ("criteo_x1", "lr"): _one(0.788625, 0.460914, "LR/LR_criteo_x1"),
    ("criteo_x1", "fm"): _one(0.802157, 0.449063, "FM/FM_criteo_x1"),
    ("criteo_x1", "fwfm"): _one(0.806270, 0.445394, "FwFM/FwFM_criteo_x1"),
    ("criteo_x1", "fmfm"): _one(0.805556, 0.446269, "FmFM/FmFM_criteo_x1"),
    ("criteo_x1", "deepfm"): _five(
        0.813812, 0.00008034, 0.438033, 0.00005682, "DeepFM/DeepFM_criteo_x1"
    ),
    ("criteo_x1", "dcnv2"): _five(
        0.813939, 0.00019976, 0.438087, 0.00020478, "DCNv2/DCNv2_criteo_x1"
    ),
    # Criteo_x4 in its _001 protocol (min count 10, embedding size 16): one run each
    ("criteo_x4", "lr"): _one(0.793359, 0.456754, "LR/LR_criteo_x4_001"),
    ("criteo_x4", "fm"): _one(0.808607, 0.443109, "FM/FM_criteo_x4_001"),
    ("criteo_x4", "fwfm"): _one(0.811214, 0.440797, "FwFM/FwFM_criteo_x4_001"),
    ("criteo_x4", "deepfm"): _one(0.814332, 0.437584, "DeepFM/DeepFM_criteo_x4_001"),
    ("criteo_x4", "dcnv2"): _one(0.814514, 0.437631, "DCNv2/DCNv2_criteo_x4_001"),
    ("avazu_x1", "lr"): _one(0.751625, 0.373527, "LR/LR_avazu_x1"),
    ("avazu_x1", "fm"): _one(0.761253, 0.367738, "FM/FM_avazu_x1"),
    ("avazu_x1", "fwfm"): _one(0.760156, 0.368781, "FwFM/FwFM_avazu_x1"),
    ("avazu_x1", "fmfm"): _one(0.759545, 0.368913, "FmFM/FmFM_avazu_x1"),
    ("avazu_x1", "deepfm"): _five(
        0.764586, 0.00044213, 0.366971, 0.00028879, "DeepFM/DeepFM_avazu_x1"
    ),
    ("avazu_x1", "dcnv2"): _five(
        0.763639, 0.00168095, 0.367326, 0.00080540, "DCNv2/DCNv2_avazu_x1"
    ),
    ("frappe_x1", "lr"): _one(0.935584, 0.307643, "LR/LR_frappe_x1"),
    ("frappe_x1", "fm"): _one(0.967108, 0.206515, "FM/FM_frappe_x1"),
    ("frappe_x1", "fwfm"): _one(0.977585, 0.202971, "FwFM/FwFM_frappe_x1"),
    ("frappe_x1", "fmfm"): _one(0.974947, 0.200439, "FmFM/FmFM_frappe_x1"),
    ("frappe_x1", "deepfm"): _five(
        0.983947, 0.00016081, 0.149462, 0.00175330, "DeepFM/DeepFM_frappe_x1"
    ),
    ("frappe_x1", "dcnv2"): _five(
        0.983824, 0.00043485, 0.152036, 0.00206478, "DCNv2/DCNv2_frappe_x1"
    ),
}
BENCHMARK_DATASETS = tuple(dict.fromkeys(dataset for dataset, _ in PUBLISHED))
METRICS = (("auc", "AUC"), ("logloss", "log loss"))


def mean_interval(values: np.ndarray, alpha: float = ALPHA) -> tuple[float, float, float]:
    """(mean, low, high): the t interval of the mean; NaN bounds for fewer than two values."""
    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(1 - alpha / 2, n - 1) * float(np.std(values, ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def welch_interval(
    values: np.ndarray, published_mean: float, published_std: float, runs: int, alpha: float = ALPHA
) -> tuple[float, float]:
    """Welch's interval of mean(values) - published_mean (both samples' spreads counted)."""
    n = len(values)
    if n < 2 or runs < 2 or math.isnan(published_std):
        return math.nan, math.nan
    ours = float(np.var(values, ddof=1)) / n
    theirs = published_std**2 / runs
    spread = math.sqrt(ours + theirs)
    if spread == 0:
        difference = float(np.mean(values)) - published_mean
        return difference, difference
    dof = (ours + theirs) ** 2 / (ours**2 / (n - 1) + theirs**2 / (runs - 1))
    half = stats.t.ppf(1 - alpha / 2, dof) * spread
    difference = float(np.mean(values)) - published_mean
    return difference - half, difference + half


def _interval_text(low: float, high: float, signed: bool = False) -> str:
    if math.isnan(low):
        return ""
    sign = "+" if signed else ""
    return f"[{low:{sign}.5f}, {high:{sign}.5f}]"


def _published_text(value: float, std: float, runs: int) -> str:
    if runs >= 2:
        return f"{value:.5f} ± {std:.5f} (mean of {runs})"
    return f"{value:.5f} (one run)"


def published_comparison(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows per benchmark dataset and model: ours (the `none` ablation's seeds) beside the
    published numbers, then the published models this study did not run. Empty when no run is
    on a benchmark dataset."""
    ours = runs[runs["dataset"].isin(BENCHMARK_DATASETS) & (runs["ablation"] == "none")]
    rows = []
    for (dataset, model), group in ours.groupby(["dataset", "model"], sort=True):
        rows.append(_row(dataset, model, group, PUBLISHED.get((dataset, model))))
    for dataset in sorted(set(ours["dataset"])):
        ran = set(ours.loc[ours["dataset"] == dataset, "model"])
        for (where, model), published in PUBLISHED.items():
            if where == dataset and model not in ran:
                rows.append(_row(dataset, model, None, published))
    return pd.DataFrame(rows)


def _row(dataset: str, model: str, group: pd.DataFrame | None, published: Published | None):
    row: dict[str, object] = {"dataset": dataset, "model": model}
    row["seeds"] = 0 if group is None else len(group)
    for metric, label in METRICS:
        if group is not None:
            values = group[metric].to_numpy(dtype=np.float64)
            mean, low, high = mean_interval(values)
            row[f"ours {label} [95% CI]"] = f"{mean:.5f} {_interval_text(low, high)}".strip()
        else:
            values, mean = None, math.nan
            row[f"ours {label} [95% CI]"] = "not run"
        if published is None:
            row[f"published {label}"] = "none published"
            row[f"Δ {label} [95% CI]"] = ""
            continue
        value = getattr(published, metric)
        std = getattr(published, f"{metric}_std")
        row[f"published {label}"] = _published_text(value, std, published.runs)
        if values is None:
            row[f"Δ {label} [95% CI]"] = ""
            continue
        if published.runs >= 2:
            low, high = welch_interval(values, value, std, published.runs)
        else:
            _, low, high = mean_interval(values)
            low, high = low - value, high - value
        interval = _interval_text(low, high, signed=True)
        row[f"Δ {label} [95% CI]"] = f"{mean - value:+.5f} {interval}".strip()
    row["flag"] = _flag(published, row["seeds"])
    row["source"] = published.source if published else ""
    return row


def _flag(published: Published | None, seeds: int) -> str:
    if published is None:
        return "no published number"
    flags = []
    if published.runs == 1:
        flags.append("published: one run (its seed spread unknown; Δ's interval is ours only)")
    if seeds == 1:
        flags.append("ours: one seed (no interval)")
    return "; ".join(flags)


def comparison_explanation() -> str:
    return (
        "Test metrics beside the open CTR benchmark's published numbers (BARS, Zhu et al. 2022, "
        "arXiv:2205.09626; each row's source is its BARS page). Ours: mean over seeds of the "
        f"runs without ablation, with the {1 - ALPHA:.0%} t interval of the mean. Published: one "
        "run (seed 2021) or the mean ± std of five seeds, as the source gives it. Δ = ours - "
        "published; its interval is Welch's where the published value is a mean of several runs, "
        "else ours alone. Settings differ where the runs did not use the `bars_*` presets "
        "(README, 'Open-benchmark datasets')."
    )
