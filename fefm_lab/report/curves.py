"""Learning curves per ablation, and the metrics at a fixed budget of epochs.

Every run logs validation AUC and log loss per epoch (MLflow metrics `val_auc`, `val_logloss`,
step = epoch). A run that early stopping ended before a later epoch counts there with its last
value: it stopped, so that is what it had learnt by then (without this, the mean of a late epoch
would hold only the slow runs).

- Curve of an ablation: per epoch, the mean over its seeds with the 95% t interval of that mean
  (mean ± t_{0.975, n-1} · s / √n, as in the ablation chart).
- Budget of B epochs (`report.budget_epochs`): each run's `budget_auc` / `budget_logloss` is its
  value after epoch min(B, its last epoch); the table compares them with the same paired verdicts
  as the test metrics, in the same family of tests. Fix B from the baseline's curve alone
  (e.g. the epoch where `none` has made most of its gain), before looking at the ablations.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from fefm_lab.report.chart import mean_interval

CURVE_METRICS = {"val_auc": "validation AUC", "val_logloss": "validation log loss"}
BUDGET_COLUMNS = {"val_auc": "budget_auc", "val_logloss": "budget_logloss"}
CURVES_NAME = "learning_curves.png"


def load_curves(client: MlflowClient, runs: pd.DataFrame) -> pd.DataFrame:
    """Per run and epoch: val_auc, val_logloss (long format, with the run's key columns)."""
    rows = []
    for run in runs.itertuples(index=False):
        per_epoch: dict[int, dict[str, float]] = {}
        for metric in CURVE_METRICS:
            for point in client.get_metric_history(run.run_id, metric):
                per_epoch.setdefault(int(point.step), {})[metric] = float(point.value)
        for epoch, values in per_epoch.items():
            rows.append(
                {
                    "run_id": run.run_id,
                    "dataset": run.dataset,
                    "model": run.model,
                    "ablation": run.ablation,
                    "seed": run.seed,
                    "epoch": epoch,
                    **{m: values.get(m, math.nan) for m in CURVE_METRICS},
                }
            )
    columns = ["run_id", "dataset", "model", "ablation", "seed", "epoch", *CURVE_METRICS]
    return pd.DataFrame(rows, columns=columns).sort_values(["run_id", "epoch"], kind="stable")


def carried_forward(curves: pd.DataFrame, last_epoch: int) -> pd.DataFrame:
    """Every run's curve on epochs 1..last_epoch, a stopped run holding its last value."""
    filled = []
    epochs = pd.Index(range(1, last_epoch + 1), name="epoch")
    for _, curve in curves.groupby("run_id", sort=False):
        frame = curve.set_index("epoch").sort_index()
        frame = frame[~frame.index.duplicated(keep="last")].reindex(epochs).ffill()
        filled.append(frame.dropna(subset=list(CURVE_METRICS), how="all").reset_index())
    if not filled:
        return curves.iloc[:0]
    return pd.concat(filled, ignore_index=True)


def with_budget(runs: pd.DataFrame, curves: pd.DataFrame, budget_epochs: int) -> pd.DataFrame:
    """`runs` plus budget_auc / budget_logloss: each run's validation metrics after epoch
    min(budget_epochs, its last epoch); NaN for a run without per-epoch metrics."""
    at_budget = carried_forward(curves, budget_epochs)
    at_budget = at_budget[at_budget["epoch"] == budget_epochs].set_index("run_id")
    extra = {
        column: runs["run_id"].map(at_budget[metric]).astype(np.float64)
        for metric, column in BUDGET_COLUMNS.items()
    }
    return runs.assign(**extra)


def curve_bands(curves: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (dataset, model, ablation, epoch): seeds, mean and 95% half width of `metric`."""
    last = int(curves["epoch"].max()) if not curves.empty else 0
    filled = carried_forward(curves, last)
    rows = []
    for key, group in filled.groupby(["dataset", "model", "ablation", "epoch"], sort=True):
        values = group[metric].dropna().to_numpy(np.float64)
        if len(values) == 0:
            continue
        mean, half = mean_interval(values)
        rows.append((*key, len(values), mean, half))
    columns = ["dataset", "model", "ablation", "epoch", "seeds", "mean", "half_width"]
    return pd.DataFrame(rows, columns=columns)


def plot_learning_curves(
    curves: pd.DataFrame,
    path: Path,
    title: str,
    order: list[str],
    budget_epochs: int | None = None,
) -> Path:
    """Per dataset and model a row of two panels (validation AUC, validation log loss): a line
    per ablation (mean over seeds) with its 95% band, the budget as a dashed line."""
    groups = list(dict.fromkeys(zip(curves["dataset"], curves["model"], strict=True)))
    figure, axes = plt.subplots(
        max(len(groups), 1), 2, figsize=(12, 3.8 * max(len(groups), 1)), squeeze=False
    )
    bands = {metric: curve_bands(curves, metric) for metric in CURVE_METRICS}
    for axis_row, (dataset, model) in zip(axes, groups, strict=False):
        for axis, (metric, label) in zip(axis_row, CURVE_METRICS.items(), strict=True):
            band = bands[metric]
            band = band[(band["dataset"] == dataset) & (band["model"] == model)]
            present = set(band["ablation"])
            names = [a for a in order if a in present] + sorted(present - set(order))
            for index, ablation in enumerate(names):
                line = band[band["ablation"] == ablation]
                colour = "black" if ablation == "none" else f"C{index % 10}"
                axis.plot(line["epoch"], line["mean"], "-", color=colour, label=ablation,
                          linewidth=2.0 if ablation == "none" else 1.3)  # fmt: skip
                half = line["half_width"].fillna(0.0)
                axis.fill_between(line["epoch"], line["mean"] - half, line["mean"] + half,
                                  color=colour, alpha=0.15, linewidth=0)  # fmt: skip
            if budget_epochs is not None:
                axis.axvline(budget_epochs, color="grey", linestyle="--", linewidth=1)
            axis.set(xlabel="epoch", ylabel=label, title=f"{dataset}, {model}: {label}")
            axis.grid(alpha=0.3)
            axis.xaxis.get_major_locator().set_params(integer=True)
        axis_row[0].legend(fontsize=8, ncols=2)
    budget = f"; dashed: budget of {budget_epochs} epochs" if budget_epochs else ""
    subtitle = f"mean over seeds with 95% band (a stopped run keeps its last value{budget})"
    figure.suptitle(f"{title}\n{subtitle}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)
    return path
