"""Write the ablation report (Markdown, CSV, PNG, HTML) and log it to the sweep's parent run."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fefm_lab.errors import UserError
from fefm_lab.fileio import atomic_path, atomic_write_text
from fefm_lab.markdown import markdown_table
from fefm_lab.report.ablation import (
    ablation_table,
    consistency_warnings,
    load_runs,
    paper_gap_seeds,
    runs_frame,
    sweep_runs,
    training_note,
)
from fefm_lab.report.chart import plot_ablation_chart
from fefm_lab.report.expectations import check_expectations, expectation_text
from fefm_lab.report.html import report_html
from fefm_lab.report.statistics import ALPHA, POWER
from fefm_lab.tracking.store import TAG_SWEEP, TrackingStore

MARKDOWN_NAME = "ablation_table.md"
CSV_NAME = "ablation_table.csv"
CHART_NAME = "ablation_chart.png"
HTML_NAME = "ablation_report.html"
RUNS_NAME = "runs.csv"
ARTIFACT_DIR = "report"


@dataclass
class Report:
    """Everything the report says, before it is rendered to files."""

    title: str
    table: pd.DataFrame
    runs: pd.DataFrame
    warnings: list[str]
    teacher: str
    gap_seeds: pd.DataFrame
    training: str = ""


@dataclass
class ReportFiles:
    markdown: str
    files: list[Path] = field(default_factory=list)
    parent_run_id: str | None = None
    warnings: list[str] = field(default_factory=list)


def _mean_std(mean: float, std: float, digits: int = 5) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if not math.isnan(std) else f"{mean:.{digits}f}"


def _difference_with_interval(row: pd.Series, metric: str) -> str:
    """`+0.00530 [-0.00513, +0.01573]`: paired mean difference and its 95% interval."""
    if row["ablation"] == "none" and row["baseline"].endswith(f"{row['model']} none"):
        return "baseline"
    if row[f"{metric}_paired_n"] < 2 or math.isnan(row[f"{metric}_ci_low"]):
        diff = row[f"{metric}_paired_diff"]
        return "" if math.isnan(diff) else f"{diff:+.5f} (n={row[f'{metric}_paired_n']})"
    return (
        f"{row[f'{metric}_paired_diff']:+.5f} "
        f"[{row[f'{metric}_ci_low']:+.5f}, {row[f'{metric}_ci_high']:+.5f}]"
    )


def _p_text(row: pd.Series, metric: str) -> str:
    p, holm = row[f"{metric}_p"], row[f"{metric}_p_holm"]
    return "" if math.isnan(p) else f"{p:.2g} ({holm:.2g})"


def _magnitude(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.5f}"


def readable_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table as people read it: mean ± std, paired Δ with 95% CI, p, verdict, resolution."""
    rows = list(table.iterrows())
    readable = pd.DataFrame(
        {
            "dataset": table["dataset"],
            "model": table["model"],
            "ablation": table["ablation"],
            "seeds": table["runs"],
            "test AUC": [_mean_std(r.auc_mean, r.auc_std) for _, r in rows],
            "Δ AUC [95% CI]": [_difference_with_interval(r, "auc") for _, r in rows],
            "p AUC (Holm)": [_p_text(r, "auc") for _, r in rows],
            "AUC verdict": list(table["auc_verdict"]),
            "resolvable Δ AUC": [_magnitude(v) for v in table["auc_mdd"]],
            "test log loss": [_mean_std(r.logloss_mean, r.logloss_std) for _, r in rows],
            "Δ log loss [95% CI]": [_difference_with_interval(r, "logloss") for _, r in rows],
            "p log loss (Holm)": [_p_text(r, "logloss") for _, r in rows],
            "log loss verdict": list(table["logloss_verdict"]),
        }
    )
    if table["paper_auc"].notna().any():
        readable["paper AUC"] = table["paper_auc"]
        readable["paper log loss"] = table["paper_logloss"]
    return readable


def explanation(alpha: float = ALPHA, power: float = POWER) -> str:
    """How to read the table (Markdown, one paragraph)."""
    return (
        "Test metrics as mean ± sample std over seeds. Δ: the paired difference to the same "
        "model without ablation (`none`), mean of the per-seed differences over the seeds both "
        f"have, with its {1 - alpha:.0%} t confidence interval. p: two-sided paired t test, in "
        "brackets Holm-adjusted over the ablations compared with the same baseline. Verdict: "
        f"better / worse when the Holm-adjusted p < {alpha}, else not resolved at this number of "
        f"seeds. Resolvable Δ: the smallest true difference these seeds detect with power "
        f"{power} at the observed paired spread."
    )


def gap_explanation(alpha: float = ALPHA, power: float = POWER) -> str:
    return (
        "Seeds the paper's Table 5 AUC gaps (ablation - no ablation) would need for a paired t "
        f"test at alpha {alpha} with power {power}, at this study's observed paired spread "
        "(a study on other data has its own spread: open CTR benchmarks report seed std of "
        "1e-4 to 2e-4 AUC on Criteo, up to 1.7e-3 on Avazu)."
    )


def warning_lines(warnings: list[str]) -> str:
    if not warnings:
        return ""
    body = "\n".join(f"> - {w}" for w in warnings)
    return (
        "> **Warning: these runs are not all comparable.** Rerun the sweep so that every run "
        f"uses the same code and data (`force=true` reruns finished configurations).\n{body}\n\n"
    )


def report_markdown(report: Report) -> str:
    parts = [
        f"# Ablation report: {report.title}\n",
        warning_lines(report.warnings) + explanation() + "\n",
        markdown_table(readable_table(report.table)) + "\n",
    ]
    if report.training:
        parts.append(report.training + "\n")
    if report.teacher:
        parts.append(report.teacher + "\n")
    if not report.gap_seeds.empty:
        parts.append(f"**Seeds needed for the paper's gaps.** {gap_explanation()}\n")
        parts.append(markdown_table(report.gap_seeds) + "\n")
    return "\n".join(parts)


def build_report(runs: pd.DataFrame, title: str) -> Report:
    """The table, warnings, teacher check and seed counts of a set of runs."""
    table = ablation_table(runs)
    return Report(
        title=title,
        table=table,
        runs=runs,
        warnings=consistency_warnings(runs),
        teacher=expectation_text(check_expectations(table, runs)),
        gap_seeds=paper_gap_seeds(table),
        training=training_note(runs),
    )


def write_files(report: Report, out_dir: Path) -> tuple[str, list[Path]]:
    """Markdown, CSV (table and runs), chart and HTML page under `out_dir`, each atomically."""
    markdown = report_markdown(report)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_listing = report.runs.drop(columns="params").sort_values(
        ["dataset", "model", "ablation", "seed"]
    )
    chart = out_dir / CHART_NAME
    with atomic_path(chart) as partial:
        plot_ablation_chart(report.table, report.runs, partial, report.title)
    with atomic_path(out_dir / CSV_NAME) as partial:
        report.table.to_csv(partial, index=False)
    with atomic_path(out_dir / RUNS_NAME) as partial:
        run_listing.to_csv(partial, index=False)
    html = report_html(
        report,
        readable_table(report.table),
        explanation(),
        gap_explanation(),
        chart.read_bytes(),
    )
    files = [
        atomic_write_text(out_dir / MARKDOWN_NAME, markdown),
        out_dir / CSV_NAME,
        out_dir / RUNS_NAME,
        chart,
        atomic_write_text(out_dir / HTML_NAME, html),
    ]
    return markdown, files


def _parent_for(store: TrackingStore, runs: pd.DataFrame, sweep: str | None) -> str | None:
    if sweep:
        parent = store.sweep_parent(sweep)
        return parent.info.run_id if parent else None
    parents = [p for p in runs["parent_run_id"] if p]
    return parents[-1] if parents else None


def log_report(store: TrackingStore, parent_run_id: str, files: list[Path]) -> None:
    """Log the report files to a run under `report/` (MLflow's artifact viewer shows them)."""
    for path in files:
        store.client.log_artifact(parent_run_id, str(path), ARTIFACT_DIR)


def write_report(store: TrackingStore, out_dir: Path, sweep: str | None = None) -> ReportFiles:
    """Build the report from the store, write it under `out_dir`, log it to the parent run."""
    runs = load_runs(store, sweep)
    title = f"experiment {store.experiment_name}" + (f", sweep {sweep}" if sweep else "")
    report = build_report(runs, title)
    markdown, files = write_files(report, out_dir)
    parent = _parent_for(store, runs, sweep)
    if parent is not None:
        log_report(store, parent, files)
    return ReportFiles(markdown, files, parent, report.warnings)


def log_sweep_report(store: TrackingStore, parent_run_id: str) -> ReportFiles:
    """The end of a sweep: the report of its runs (children and reused runs), logged to its
    parent run (the files are made in a temporary directory)."""
    parent = store.client.get_run(parent_run_id)
    runs = runs_frame(sweep_runs(store, parent))
    sweep = parent.data.tags.get(TAG_SWEEP, parent_run_id)
    if runs.empty:
        raise UserError(f"no finished runs with test metrics in sweep {sweep!r}")
    report = build_report(runs, f"experiment {store.experiment_name}, sweep {sweep}")
    with tempfile.TemporaryDirectory(prefix="fefm-lab-report-") as scratch:
        markdown, files = write_files(report, Path(scratch))
        log_report(store, parent_run_id, files)
    return ReportFiles(markdown, [], parent_run_id, report.warnings)
