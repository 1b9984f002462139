"""The end of a sweep: a summary table of its configurations and the ablation report, logged to
the parent run, and the UI link that compares the sweep's runs.

`finish_sweep` is the one function that ends a sweep, on every way out (see `fefm_lab.sweep`).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd
from mlflow.entities import Run

from fefm_lab.config.rules import schema_fields
from fefm_lab.config.schema import MlflowConfig
from fefm_lab.errors import UserError
from fefm_lab.markdown import markdown_table
from fefm_lab.report.links import sweep_links
from fefm_lab.report.write import log_sweep_report
from fefm_lab.sweep.parent import unrun_jobs
from fefm_lab.tracking.run_logging import log_metrics, log_text
from fefm_lab.tracking.store import (
    TAG_OUTCOME,
    TAG_REASON,
    TAG_SWEEP,
    TrackingStore,
    latest_per_config,
    reused_runs,
    tag_value,
)

if TYPE_CHECKING:
    from fefm_lab.report.settings import ReportSettings

SUMMARY_COLUMNS = ("run", "status", "test_auc", "test_logloss", "reason", "run_id")
DEFAULT_UI_PORT = schema_fields(MlflowConfig)["ui_port"].default  # declared in the schema
TAG_REPORT = "report"  # on the parent: "logged" or why no report was logged


@dataclass
class SweepSummary:
    rows: list[dict] = field(default_factory=list)
    markdown: str = ""
    report: str = ""  # the ablation report (Markdown), empty when none could be made
    report_note: str = ""  # why there is no report, or what it warns about
    links: list[str] = field(default_factory=list)  # UI links that compare the sweep's runs

    @property
    def failed(self) -> list[dict]:
        return [row for row in self.rows if row["status"] in ("failed", "killed")]


def outcome_of(run: Run) -> str:
    """finished | skipped | failed | killed | running, from the run's status and outcome tag."""
    status = run.info.status
    if status == "FINISHED":
        return "skipped" if run.data.tags.get(TAG_OUTCOME) == "skipped" else "finished"
    return {"FAILED": "failed", "KILLED": "killed"}.get(status, "running")


def summary_rows(runs: list[Run]) -> list[dict]:
    rows = []
    for run in latest_per_config(runs):
        metrics = run.data.metrics
        rows.append(
            {
                "run": run.info.run_name,
                "status": outcome_of(run),
                "test_auc": metrics.get("test_auc", math.nan),
                "test_logloss": metrics.get("test_logloss", math.nan),
                "reason": run.data.tags.get(TAG_REASON, ""),
                "run_id": run.info.run_id,
            }
        )
    return sorted(rows, key=lambda row: row["run"])


def summarize_sweep(store: TrackingStore, parent_run_id: str) -> SweepSummary:
    """Every configuration of the sweep with its latest run (read only).

    A sweep's configurations are its children plus those whose FINISHED run a job reused
    instead of running again (filed under another sweep or a single run); jobs that failed
    before they could open a run are listed as failed, without a run id.
    """
    parent = store.client.get_run(parent_run_id)
    rows = summary_rows(store.children(parent_run_id) + reused_runs(store, parent))
    rows += [
        {"run": job["run"], "status": "failed", "test_auc": math.nan, "test_logloss": math.nan}
        | {"reason": job["reason"], "run_id": ""}
        for job in unrun_jobs(parent)
    ]
    table = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    return SweepSummary(rows, markdown_table(table) if rows else "(no runs)")


def finish_sweep(
    store: TrackingStore,
    parent_run_id: str,
    *,
    status: str | None = None,
    reason: str = "",
    ui_port: int = DEFAULT_UI_PORT,
    report: ReportSettings | None = None,
) -> SweepSummary:
    """Summarise the configurations, log the table (md + csv), counts and the ablation report
    (md, csv, png, html under `report/`) to the parent, close it, and make the UI links.

    The parent ends with `status` when given (KILLED or FAILED by an interrupted or failed
    launch, with `reason`), else FINISHED when no configuration's latest run failed, else FAILED.
    A report that cannot be made (no finished runs, or an error while making it) is noted on
    the parent (tag `report`) and does not keep the parent open.
    """
    summary = summarize_sweep(store, parent_run_id)
    table = pd.DataFrame(summary.rows, columns=list(SUMMARY_COLUMNS))
    counts = table["status"].value_counts().to_dict()
    log_metrics(
        store.client,
        parent_run_id,
        {f"runs_{name}": counts.get(name, 0) for name in ("finished", "skipped", "failed")}
        | {"runs_total": len(summary.rows)},
    )
    log_text(store.client, parent_run_id, summary.markdown + "\n", "sweep_summary.md")
    log_text(store.client, parent_run_id, table.to_csv(index=False), "sweep_summary.csv")
    end = status or ("FAILED" if summary.failed else "FINISHED")
    sweep = store.client.get_run(parent_run_id).data.tags.get(TAG_SWEEP, "")
    if status is None:
        _log_report(store, parent_run_id, summary, report)
    else:  # an interrupted or failed launch closes at once; `fefm-lab report` can follow
        summary.report_note = f"no ablation report: the sweep ended {end} ({reason})"
        store.client.set_tag(parent_run_id, TAG_REPORT, tag_value(summary.report_note))
    if reason:  # the parent says why it ended this way
        store.end_run(parent_run_id, end.lower(), reason)
    else:
        store.client.set_terminated(parent_run_id, end)
    if sweep:
        summary.links = sweep_links(store, sweep, ui_port)
    return summary


def _log_report(
    store: TrackingStore,
    parent_run_id: str,
    summary: SweepSummary,
    settings: ReportSettings | None = None,
) -> None:
    try:
        written = log_sweep_report(store, parent_run_id, settings)
    except UserError as error:
        summary.report_note = f"no ablation report: {error}"
    except Exception as error:  # a bug in the report must not leave the sweep's run open
        summary.report_note = f"the ablation report failed: {type(error).__name__}: {error}"
        print(summary.report_note, file=sys.stderr)
    else:
        summary.report = written.markdown
        summary.report_note = "; ".join(written.warnings)
        store.client.set_tag(parent_run_id, TAG_REPORT, "logged")
        return
    store.client.set_tag(parent_run_id, TAG_REPORT, tag_value(summary.report_note))
