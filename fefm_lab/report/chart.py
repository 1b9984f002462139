"""The ablation chart: test AUC per ablation with its seeds and confidence intervals.

Per dataset and model, two panels. Left: every seed's test AUC (dots) and the mean with its 95%
t interval over seeds (bar). Right: the paired difference to `none` per seed (dots) and its mean
with the interval its verdict reads (simultaneous over the report's tests), coloured by the
verdict, and the equivalence margin as a shaded band around 0. The right panel is
the one that decides: seed-to-seed spread shared by both runs of a seed cancels there.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from fefm_lab.report.statistics import ALPHA, BETTER, WORSE
from fefm_lab.report.verdicts import EQUIVALENT

VERDICT_COLOURS = {WORSE: "#c0392b", BETTER: "#1e8449", EQUIVALENT: "#2471a3"}
UNRESOLVED_COLOUR = "#7f8c8d"


def mean_interval(values: np.ndarray, confidence: float = 1 - ALPHA) -> tuple[float, float]:
    """(mean, half width of its t interval); the half width is NaN for fewer than two values."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, math.nan
    sem = float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return mean, float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1)) * sem


def _seed_offsets(count: int) -> np.ndarray:
    return np.linspace(-0.18, 0.18, count) if count > 1 else np.zeros(1)


def _draw_values(axis, runs: pd.DataFrame, ablations: list[str]) -> None:
    for position, ablation in enumerate(ablations):
        values = runs[runs["ablation"] == ablation].sort_values("seed")["auc"].to_numpy()
        axis.scatter(values, position + _seed_offsets(len(values)), s=14, color="#34495e",
                     alpha=0.7, zorder=3)  # fmt: skip
        mean, half = mean_interval(values)
        axis.errorbar(mean, position, xerr=None if math.isnan(half) else half, fmt="|",
                      markersize=14, capsize=4, color="C0", zorder=4)  # fmt: skip
    axis.set(xlabel="test AUC (dots: seeds; bar: mean, 95% CI)")


def _draw_differences(axis, runs: pd.DataFrame, rows: pd.DataFrame, ablations: list[str]) -> None:
    baseline = runs[runs["ablation"] == "none"].set_index("seed")["auc"]
    for position, ablation in enumerate(ablations):
        if ablation == "none":
            continue
        row = rows[rows["ablation"] == ablation].iloc[0]
        values = runs[runs["ablation"] == ablation].set_index("seed")["auc"]
        common = values.index.intersection(baseline.index).sort_values()
        differences = (values.loc[common] - baseline.loc[common]).to_numpy()
        colour = VERDICT_COLOURS.get(row["auc_verdict"], UNRESOLVED_COLOUR)
        axis.scatter(differences, position + _seed_offsets(len(differences)), s=14,
                     color=colour, alpha=0.6, zorder=3)  # fmt: skip
        if not math.isnan(row["auc_vci_low"]):
            axis.plot([row["auc_vci_low"], row["auc_vci_high"]], [position, position], color=colour,
                      linewidth=3, solid_capstyle="butt", zorder=4)  # fmt: skip
        axis.plot(row["auc_paired_diff"], position, "D", color=colour, markersize=5, zorder=5)
    axis.axvline(0.0, color="black", linewidth=0.8)
    margins = rows["auc_margin"].dropna()
    if not margins.empty:
        axis.axvspan(-margins.iloc[0], margins.iloc[0], color="#2471a3", alpha=0.12, zorder=1)
    axis.set(
        xlabel="paired Δ test AUC vs none (verdict interval; band: margin; red worse, green "
        "better, blue equivalent, grey unresolved)"
    )


def plot_ablation_chart(table: pd.DataFrame, runs: pd.DataFrame, path: Path, title: str) -> Path:
    """Write the chart as PNG to `path` (see the module docstring)."""
    groups = list(dict.fromkeys(zip(table["dataset"], table["model"], strict=True)))
    heights = [max(2.0, 0.5 * (table["model"] == m).sum() + 1.2) for _, m in groups]
    figure, axes = plt.subplots(
        len(groups), 2, figsize=(12, sum(heights) + 0.6), squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )  # fmt: skip
    for axis_row, (dataset, model) in zip(axes, groups, strict=True):
        rows = table[(table["dataset"] == dataset) & (table["model"] == model)]
        ablations = list(rows["ablation"])
        group_runs = runs[(runs["dataset"] == dataset) & (runs["model"] == model)]
        _draw_values(axis_row[0], group_runs, ablations)
        if "none" in ablations:
            _draw_differences(axis_row[1], group_runs, rows, ablations)
        else:
            axis_row[1].set_axis_off()
        for axis in axis_row:
            axis.set_yticks(range(len(ablations)), ablations)
            axis.set_ylim(len(ablations) - 0.5, -0.5)
            axis.grid(axis="x", alpha=0.3)
        axis_row[0].set_title(f"{dataset}, {model}: test AUC per ablation", fontsize=10)
        axis_row[1].set_title(f"{dataset}, {model}: paired difference to none", fontsize=10)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)
    return path
