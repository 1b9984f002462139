"""Printable links to a sweep in the MLflow UI: its report (first), its configurations side by
side, and its run list. Which runs are compared is the report's choice (the latest run of each
configuration with test metrics), so the links live here rather than in `fefm_lab.tracking.ui`.
"""

from __future__ import annotations

from mlflow.entities import Run

from fefm_lab.report.ablation_table import runs_frame, sweep_runs
from fefm_lab.tracking.store import TrackingStore
from fefm_lab.tracking.ui import REPORT_ARTIFACT, comparison_url, report_url, runs_url, ui_base_url


def sweep_comparison_runs(store: TrackingStore, sweep: str) -> list[Run]:
    """The sweep's latest run of each configuration that finished with test metrics."""
    parent = store.sweep_parent(sweep)
    if parent is None:
        return []
    runs = sweep_runs(store, parent)
    chosen = set(runs_frame(runs).get("run_id", []))
    return sorted((r for r in runs if r.info.run_id in chosen), key=lambda r: r.info.run_name or "")


def has_report(store: TrackingStore, run_id: str) -> bool:
    """Whether the run holds the HTML report (logged by a sweep's end or `fefm-lab report`)."""
    folder = REPORT_ARTIFACT.rpartition("/")[0]
    return any(a.path == REPORT_ARTIFACT for a in store.client.list_artifacts(run_id, folder))


def sweep_links(store: TrackingStore, sweep: str, port: int) -> list[str]:
    """Printable lines: the sweep's report (first, once logged), the comparison link of its runs
    and its filtered run list."""
    base = ui_base_url(port)
    runs = sweep_comparison_runs(store, sweep)
    lines = []
    parent = store.sweep_parent(sweep)
    if parent is not None and has_report(store, parent.info.run_id):
        url = report_url(base, store.experiment_id, parent.info.run_id)
        lines.append(
            f"ablation report of sweep {sweep!r} (every ablation's test AUC and log loss with "
            f"its verdicts, at a glance):\n  {url}"
        )
    if runs:
        ids = [r.info.run_id for r in runs]
        lines.append(
            f"compare sweep {sweep!r} ({len(ids)} runs, test AUC and log loss side by side):\n"
            f"  {comparison_url(base, store.experiment_id, ids)}"
        )
    else:
        lines.append(f"sweep {sweep!r} has no finished runs to compare yet")
    lines.append(f"its runs in the run list:\n  {runs_url(base, store.experiment_id, sweep)}")
    return lines
