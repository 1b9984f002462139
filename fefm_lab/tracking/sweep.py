"""The end of a sweep: a summary table of its configurations, logged to the parent run.

`finish_sweep` is the one function that ends a sweep, on every way out (see `fefm_lab.sweep`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
from mlflow.entities import Run

from fefm_lab.markdown import markdown_table
from fefm_lab.sweep.parent import reused_runs, unrun_jobs
from fefm_lab.tracking.run_logging import log_metrics, log_text
from fefm_lab.tracking.store import (
    TAG_OUTCOME,
    TAG_REASON,
    TrackingStore,
    latest_per_config,
)

SUMMARY_COLUMNS = ("run", "status", "test_auc", "test_logloss", "reason", "run_id")


@dataclass
class SweepSummary:
    rows: list[dict] = field(default_factory=list)
    markdown: str = ""

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
    store: TrackingStore, parent_run_id: str, *, status: str | None = None, reason: str = ""
) -> SweepSummary:
    """Summarise the configurations, log the table (md + csv) and counts to the parent, close it.

    The parent ends with `status` when given (KILLED or FAILED by an interrupted or failed
    launch, with `reason`), else FINISHED when no configuration's latest run failed, else FAILED.
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
    if reason:
        store.client.set_tag(parent_run_id, TAG_OUTCOME, end.lower())
        store.client.set_tag(parent_run_id, TAG_REASON, reason[:5000])
    store.client.set_terminated(parent_run_id, end)
    return summary
