"""Write the ablation report (Markdown, CSV, PNG, HTML) and log it to the sweep's parent run."""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fefm_lab.config.ablation import ABLATION_NAMES
from fefm_lab.errors import UserError
from fefm_lab.fileio import atomic_path, atomic_write_text
from fefm_lab.markdown import markdown_table
from fefm_lab.report.ablation_table import (
    BUDGET_METRICS,
    METRICS,
    ablation_table,
    consistency_warnings,
    load_runs,
    paper_gap_seeds,
    runs_frame,
    sweep_runs,
    training_note,
)
from fefm_lab.report.adaptive_study import TAG_ADAPTIVE, adaptive_section
from fefm_lab.report.chart import plot_ablation_chart
from fefm_lab.report.curves import CURVES_NAME, load_curves, plot_learning_curves, with_budget
from fefm_lab.report.document import Report, Section
from fefm_lab.report.expectations import check_expectations, expectation_text
from fefm_lab.report.html import html_section, report_html
from fefm_lab.report.published import comparison_explanation, published_comparison
from fefm_lab.report.settings import ReportSettings
from fefm_lab.report.statistics import NOT_RESOLVED, POWER
from fefm_lab.tracking.store import TAG_SWEEP, TrackingStore

MARKDOWN_NAME = "ablation_table.md"
CSV_NAME = "ablation_table.csv"
CHART_NAME = "ablation_chart.png"
HTML_NAME = "ablation_report.html"
RUNS_NAME = "runs.csv"
PUBLISHED_NAME = "published_comparison.csv"
ARTIFACT_DIR = "report"
METRIC_LABELS = {
    "auc": "test AUC",
    "logloss": "test log loss",
    "budget_auc": "budget val AUC",
    "budget_logloss": "budget val log loss",
}


@dataclass
class ReportFiles:
    markdown: str
    files: list[Path] = field(default_factory=list)
    parent_run_id: str | None = None
    warnings: list[str] = field(default_factory=list)


def _mean_std(mean: float, std: float, digits: int = 5) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if not math.isnan(std) else f"{mean:.{digits}f}"


def _difference_with_interval(row: pd.Series, metric: str) -> str:
    """`+0.00530 [-0.00513, +0.01573]`: paired mean difference and the interval its verdict
    reads (simultaneous over the report's tests and looks)."""
    if row["ablation"] == "none" and row["baseline"].endswith(f"{row['model']} none"):
        return "baseline"
    if row[f"{metric}_paired_n"] < 2 or math.isnan(row[f"{metric}_vci_low"]):
        diff = row[f"{metric}_paired_diff"]
        return "" if math.isnan(diff) else f"{diff:+.5f} (n={row[f'{metric}_paired_n']})"
    return (
        f"{row[f'{metric}_paired_diff']:+.5f} "
        f"[{row[f'{metric}_vci_low']:+.5f}, {row[f'{metric}_vci_high']:+.5f}]"
    )


def _verdict_text(row: pd.Series, metric: str) -> str:
    """The verdict; an unresolved one says about how many paired seeds would settle it."""
    verdict = row[f"{metric}_verdict"]
    needed = row[f"{metric}_seeds_needed"]
    if verdict == NOT_RESOLVED and not math.isnan(needed):
        return f"{verdict} (~{int(needed)} seeds)"
    return verdict


def readable_table(table: pd.DataFrame, metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """The table as people read it: mean ± std, paired Δ with its interval, verdict."""
    rows = list(table.iterrows())
    columns: dict[str, object] = {
        "dataset": table["dataset"],
        "model": table["model"],
        "ablation": table["ablation"],
        "seeds": table["runs"],
    }
    for metric in metrics:
        label = METRIC_LABELS[metric]
        columns[label] = [_mean_std(r[f"{metric}_mean"], r[f"{metric}_std"]) for _, r in rows]
        columns[f"Δ {label} [CI]"] = [_difference_with_interval(r, metric) for _, r in rows]
        columns[f"{label} verdict"] = [_verdict_text(r, metric) for _, r in rows]
    readable = pd.DataFrame(columns)
    if metrics == METRICS and table["paper_auc"].notna().any():
        readable["paper AUC"] = table["paper_auc"]
        readable["paper log loss"] = table["paper_logloss"]
    return readable


GLANCE_VERDICTS = {"auc": "AUC verdict", "logloss": "log loss verdict"}


def glance_table(table: pd.DataFrame) -> pd.DataFrame:
    """Every ablation's mean test AUC and log loss with their verdicts, in as few columns as
    fit MLflow's artifact pane (dataset and model only when the report has several)."""
    columns: dict[str, object] = {}
    groups = table[["dataset", "model"]].drop_duplicates()
    if len(groups) > 1:
        columns["dataset"] = table["dataset"]
        columns["model"] = table["model"]
    columns["ablation"] = table["ablation"]
    columns["seeds"] = table["runs"]
    for metric in METRICS:
        label = METRIC_LABELS[metric]
        columns[label] = [f"{v:.5f}" for v in table[f"{metric}_mean"]]
        columns[GLANCE_VERDICTS[metric]] = [
            "baseline" if d == "baseline" else v
            for d, v in zip(
                [_difference_with_interval(r, metric) for _, r in table.iterrows()],
                table[f"{metric}_verdict"],
                strict=True,
            )
        ]
    return pd.DataFrame(columns)


def _family(table: pd.DataFrame) -> tuple[int, float]:
    """(tests, per-test level) of the table's verdicts; (0, NaN) when it compares nothing."""
    levels = table["auc_level"].dropna() if "auc_level" in table else pd.Series(dtype=float)
    if levels.empty:
        return 0, math.nan
    comparisons = int(table["auc_level"].notna().sum())
    metrics = sum(1 for c in table.columns if c.endswith("_level"))
    return comparisons * metrics, float(levels.iloc[0])


def explanation(table: pd.DataFrame, settings: ReportSettings | None = None) -> str:
    """How to read the table (Markdown, one paragraph)."""
    settings = settings or ReportSettings()
    tests, level = _family(table)
    names = {"auc": "AUC", "logloss": "log loss"}
    margins = ", ".join(f"{names.get(m, m)} ±{v:g}" for m, v in settings.margins.items())
    looks = f" × {settings.looks} planned looks" if settings.looks > 1 else ""
    interval = (
        f"its t interval at level 1 − {settings.alpha:g}/({tests} tests{looks}) = {1 - level:.2%}"
        if tests
        else "its t interval"
    )
    return (
        "Metrics as mean ± sample std over seeds. Δ: the paired difference to the same model "
        "without ablation (`none`), mean of the per-seed differences over the seeds both have, "
        f"with {interval} (Bonferroni: the chance of any false verdict in this report is at "
        f"most {settings.alpha:g}). Verdict: **equivalent** when the interval lies inside the "
        f"margin ({margins}; `report.margin.*`), else **better** / **worse** when it excludes "
        "0, else **not resolved**, with about the paired seeds that would settle it at the "
        "observed mean and spread. Better: higher AUC, lower log loss."
    )


def gap_explanation(table: pd.DataFrame, settings: ReportSettings, power: float = POWER) -> str:
    """The caption of the seeds-needed table: the verdicts' level it uses, and its terms."""
    tests, level = _family(table)
    looks = f" × {settings.looks} planned looks" if settings.looks > 1 else ""
    return (
        "Seeds the paper's Table 5 AUC gaps (ablation - no ablation) would need to settle as "
        "better / worse in this report, at this study's observed paired spread: the paired t "
        f"test at the level the verdicts read, {settings.alpha:g}/({tests} tests{looks}) = "
        f"{level:.3g} (Bonferroni; its interval then excludes 0), with power {power:g}. "
        "Resolvable Δ AUC: the gap these seeds detect so. A study with other comparisons or "
        "looks has its own level, and one on other data its own spread (open CTR benchmarks "
        "report seed std of 1e-4 to 2e-4 AUC on Criteo, up to 1.7e-3 on Avazu)."
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
        warning_lines(report.warnings) + explanation(report.table, report.settings) + "\n",
        markdown_table(readable_table(report.table)) + "\n",
    ]
    if has_budget(report):
        parts.append(budget_explanation(report.settings) + "\n")
        parts.append(markdown_table(readable_table(report.table, BUDGET_METRICS)) + "\n")
    if not report.curves.empty:
        parts.append(f"![learning curves]({CURVES_NAME})\n")
    if report.tuned is not None:
        parts.append(report.tuned.markdown())
    if report.training:
        parts.append(report.training + "\n")
    if report.teacher:
        parts.append(report.teacher + "\n")
    if report.adaptive is not None:
        parts.append(report.adaptive.markdown())
    if not report.gap_seeds.empty:
        caption = gap_explanation(report.table, report.settings)
        parts.append(f"**Seeds needed for the paper's gaps.** {caption}\n")
        parts.append(markdown_table(report.gap_seeds) + "\n")
    if not report.published.empty:
        parts.append(f"**Beside the open benchmark.** {comparison_explanation()}\n")
        parts.append(markdown_table(report.published) + "\n")
    return "\n".join(parts)


TUNED_TITLE = "Tuned settings"
TUNED_COLUMN = "settings chosen on validation"


def tuned_settings(runs: pd.DataFrame) -> Section | None:
    """Which settings each model and ablation got from its tuning (None when none was tuned)."""
    if "tuned_settings" not in runs or not runs["tuned_settings"].astype(bool).any():
        return None
    tuned = runs[runs["tuned_settings"].astype(bool)]
    order = {name: i for i, name in enumerate(ABLATION_NAMES)}  # as the ablation table
    table = (
        tuned[["dataset", "model", "ablation", "tuned_settings"]]
        .drop_duplicates()
        .assign(_order=lambda t: t["ablation"].map(lambda a: order.get(a, len(order))))
        .sort_values(["dataset", "model", "_order", "ablation"])
        .drop(columns="_order")
        .rename(columns={"tuned_settings": TUNED_COLUMN})
    )
    return Section(
        TUNED_TITLE,
        "Each ablation was tuned with the same trial budget on the validation split "
        "(hydra/sweeper=optuna), then run over the seeds with what it chose:",
        table.reset_index(drop=True),
        table_id="tuned-settings",
        wrap=(TUNED_COLUMN,),
    )


def has_budget(report: Report) -> bool:
    return f"{BUDGET_METRICS[0]}_verdict" in report.table


def budget_explanation(settings: ReportSettings) -> str:
    return (
        f"**At a fixed budget of {settings.budget_epochs} epochs** (`report.budget_epochs`): "
        "validation AUC and log loss after that epoch (or at the end of a run that stopped "
        "earlier), compared the same way, in the same family of tests."
    )


def build_report(
    runs: pd.DataFrame,
    title: str,
    settings: ReportSettings | None = None,
    adaptive: dict | None = None,
    curves: pd.DataFrame | None = None,
) -> Report:
    """The table, warnings, teacher check and seed counts of a set of runs; `adaptive`: the
    settings an adaptive-seeds sweep tagged its parent with (TAG_ADAPTIVE), whose planned looks
    the verdicts then count; with per-epoch `curves` also the learning curves and, when
    `settings.budget_epochs` is set, the comparison at that budget."""
    settings = settings or ReportSettings()
    if adaptive:
        settings = dataclasses.replace(settings, looks=int(adaptive["looks"]))
    curves = curves if curves is not None else pd.DataFrame()
    if settings.budget_epochs is not None and not curves.empty:
        runs = with_budget(runs, curves, settings.budget_epochs)
    table = ablation_table(runs, settings)
    return Report(
        title=title,
        table=table,
        runs=runs,
        warnings=consistency_warnings(runs),
        teacher=expectation_text(check_expectations(table, runs)),
        gap_seeds=paper_gap_seeds(table),
        training=training_note(runs),
        settings=settings,
        tuned=tuned_settings(runs),
        adaptive=adaptive_section(runs, adaptive) if adaptive else None,
        published=published_comparison(runs) if settings.published else pd.DataFrame(),
        curves=curves,
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
    if not report.published.empty:
        with atomic_path(out_dir / PUBLISHED_NAME) as partial:
            report.published.to_csv(partial, index=False)
    files = [out_dir / CSV_NAME, out_dir / RUNS_NAME, chart]
    curves_png = None
    if not report.curves.empty:
        with atomic_path(out_dir / CURVES_NAME) as partial:
            order = list(report.table["ablation"].drop_duplicates())
            plot_learning_curves(
                report.curves, partial, report.title, order, report.settings.budget_epochs
            )
        files.append(out_dir / CURVES_NAME)
        curves_png = (out_dir / CURVES_NAME).read_bytes()
    budget = ""
    if has_budget(report):
        budget = html_section(
            budget_explanation(report.settings),
            readable_table(report.table, BUDGET_METRICS),
            "budget-table",
        )
    html = report_html(
        report,
        readable_table(report.table),
        explanation(report.table, report.settings),
        gap_explanation(report.table, report.settings),
        chart.read_bytes(),
        published_text=comparison_explanation(),
        curves_png=curves_png,
        budget=budget,
        glance=glance_table(report.table),
    )
    files.insert(0, atomic_write_text(out_dir / MARKDOWN_NAME, markdown))
    files.append(atomic_write_text(out_dir / HTML_NAME, html))
    if not report.published.empty:
        files.insert(3, out_dir / PUBLISHED_NAME)
    return markdown, files


def _parent_for(store: TrackingStore, runs: pd.DataFrame, sweep: str | None) -> str | None:
    if sweep:
        parent = store.sweep_parent(sweep)
        return parent.info.run_id if parent else None
    parents = [p for p in runs["parent_run_id"] if p]
    return parents[-1] if parents else None


def adaptive_settings(store: TrackingStore, parent_run_id: str | None) -> dict | None:
    """What an adaptive-seeds sweep recorded on its parent run (None for another sweep)."""
    if parent_run_id is None:
        return None
    text = store.client.get_run(parent_run_id).data.tags.get(TAG_ADAPTIVE)
    return json.loads(text) if text else None


def log_report(store: TrackingStore, parent_run_id: str, files: list[Path]) -> None:
    """Log the report files to a run under `report/` (MLflow's artifact viewer shows them)."""
    for path in files:
        store.client.log_artifact(parent_run_id, str(path), ARTIFACT_DIR)


def write_report(
    store: TrackingStore,
    out_dir: Path,
    sweep: str | None = None,
    settings: ReportSettings | None = None,
) -> ReportFiles:
    """Build the report from the store, write it under `out_dir`, log it to the parent run."""
    runs = load_runs(store, sweep)
    title = f"experiment {store.experiment_name}" + (f", sweep {sweep}" if sweep else "")
    parent = _parent_for(store, runs, sweep)
    curves = load_curves(store.client, runs)
    report = build_report(runs, title, settings, adaptive_settings(store, parent), curves)
    markdown, files = write_files(report, out_dir)
    if parent is not None:
        log_report(store, parent, files)
    return ReportFiles(markdown, files, parent, report.warnings)


def log_sweep_report(
    store: TrackingStore, parent_run_id: str, settings: ReportSettings | None = None
) -> ReportFiles:
    """The end of a sweep: the report of its runs (children and reused runs), logged to its
    parent run (the files are made in a temporary directory)."""
    parent = store.client.get_run(parent_run_id)
    runs = runs_frame(sweep_runs(store, parent))
    sweep = parent.data.tags.get(TAG_SWEEP, parent_run_id)
    if runs.empty:
        raise UserError(f"no finished runs with test metrics in sweep {sweep!r}")
    title = f"experiment {store.experiment_name}, sweep {sweep}"
    curves = load_curves(store.client, runs)
    report = build_report(runs, title, settings, adaptive_settings(store, parent_run_id), curves)
    with tempfile.TemporaryDirectory(prefix="fefm-lab-report-") as scratch:
        markdown, files = write_files(report, Path(scratch))
        log_report(store, parent_run_id, files)
    return ReportFiles(markdown, [], parent_run_id, report.warnings)
