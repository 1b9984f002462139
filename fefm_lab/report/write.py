"""Write the ablation report (Markdown, CSV, PNG) and log it to the sweep's parent run."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from fefm_lab.fileio import atomic_path
from fefm_lab.markdown import markdown_table
from fefm_lab.report.ablation import ablation_table, load_runs
from fefm_lab.tracking.store import TrackingStore

MARKDOWN_NAME = "ablation_table.md"
CSV_NAME = "ablation_table.csv"
CHART_NAME = "ablation_differences.png"
RUNS_NAME = "runs.csv"


@dataclass
class ReportFiles:
    markdown: str
    files: list[Path] = field(default_factory=list)
    parent_run_id: str | None = None


def _mean_std(mean: float, std: float, digits: int = 5) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if not math.isnan(std) else f"{mean:.{digits}f}"


def _signed(value: float, digits: int = 5) -> str:
    return "" if math.isnan(value) else f"{value:+.{digits}f}"


def _paired_text(row: pd.Series, metric: str) -> str:
    if row[f"{metric}_paired_n"] < 2 or math.isnan(row[f"{metric}_t"]):
        return ""
    return (
        f"{row[f'{metric}_paired_diff']:+.5f} ± {row[f'{metric}_paired_std']:.5f} "
        f"(t={row[f'{metric}_t']:.2f}, p={row[f'{metric}_p']:.3g}, n={row[f'{metric}_paired_n']})"
    )


def readable_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table as people read it: mean ± std, differences, paired tests, paper values."""
    readable = pd.DataFrame(
        {
            "dataset": table["dataset"],
            "model": table["model"],
            "ablation": table["ablation"],
            "runs": table["runs"],
            "test AUC": [
                _mean_std(m, s) for m, s in zip(table.auc_mean, table.auc_std, strict=True)
            ],
            "Δ AUC": [_signed(v) for v in table["auc_diff"]],
            "paired Δ AUC": [_paired_text(row, "auc") for _, row in table.iterrows()],
            "test log loss": [
                _mean_std(m, s) for m, s in zip(table.logloss_mean, table.logloss_std, strict=True)
            ],
            "Δ log loss": [_signed(v) for v in table["logloss_diff"]],
            "paired Δ log loss": [_paired_text(row, "logloss") for _, row in table.iterrows()],
        }
    )
    if table["paper_auc"].notna().any():
        readable["paper AUC"] = table["paper_auc"]
        readable["paper log loss"] = table["paper_logloss"]
    return readable


def report_markdown(table: pd.DataFrame, title: str) -> str:
    return (
        f"# Ablation report: {title}\n\n"
        "Test metrics as mean ± sample std over seeds. Δ: difference of means to the same model "
        "without ablation (`none`). Paired Δ: mean ± std of the per-seed differences over the "
        "seeds both have, with the paired t statistic and its two-sided p-value.\n\n"
        f"{markdown_table(readable_table(table))}\n"
    )


def plot_differences(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Per dataset: Δ AUC and Δ log loss of each ablation vs `none`, error bars = paired std."""
    datasets = list(dict.fromkeys(table["dataset"]))
    figure, axes = plt.subplots(
        len(datasets), 2, figsize=(10, 1.2 + 0.45 * len(table)), squeeze=False
    )
    for axis_row, dataset in zip(axes, datasets, strict=True):
        rows = table[(table["dataset"] == dataset) & (table["ablation"] != "none")]
        labels = [
            f"{m} {a}" if m != "deepfefm" else a
            for m, a in zip(rows.model, rows.ablation, strict=True)
        ]
        for axis, metric, name in zip(
            axis_row, ("auc", "logloss"), ("AUC", "log loss"), strict=True
        ):
            errors = rows[f"{metric}_paired_std"].fillna(0.0)
            axis.barh(labels, rows[f"{metric}_diff"], xerr=errors, capsize=3, color="C0")
            axis.axvline(0.0, color="black", linewidth=0.8)
            axis.set(title=f"{dataset}: Δ test {name} vs none", xlabel=f"Δ {name}")
            axis.invert_yaxis()
            axis.grid(axis="x", alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)
    return path


def _replace(path: Path, write: Callable[[Path], object]) -> Path:
    """`write(temporary path)`, then the temporary file replaces `path` (fefm_lab.fileio)."""
    with atomic_path(path) as partial:
        write(partial)
    return path


def _parent_for(store: TrackingStore, runs: pd.DataFrame, sweep: str | None) -> str | None:
    if sweep:
        parent = store.sweep_parent(sweep)
        return parent.info.run_id if parent else None
    parents = [p for p in runs["parent_run_id"] if p]
    return parents[-1] if parents else None


def write_report(store: TrackingStore, out_dir: Path, sweep: str | None = None) -> ReportFiles:
    """Build the table from the store, write it under `out_dir`, log it to the parent run."""
    runs = load_runs(store, sweep)
    table = ablation_table(runs)
    title = f"experiment {store.experiment_name}" + (f", sweep {sweep}" if sweep else "")
    markdown = report_markdown(table, title)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_listing = runs.drop(columns="params").sort_values(["dataset", "model", "ablation", "seed"])
    files = [
        _replace(out_dir / MARKDOWN_NAME, lambda p: p.write_text(markdown)),
        _replace(out_dir / CSV_NAME, lambda p: table.to_csv(p, index=False)),
        _replace(out_dir / RUNS_NAME, lambda p: run_listing.to_csv(p, index=False)),
        _replace(out_dir / CHART_NAME, lambda p: plot_differences(table, p, title)),
    ]
    parent = _parent_for(store, runs, sweep)
    if parent is not None:
        for path in files:
            store.client.log_artifact(parent, str(path), "report")
    return ReportFiles(markdown, files, parent)
