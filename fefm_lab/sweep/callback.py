"""The Hydra callback that opens a sweep's parent run and ends it (listed under `hydra.callbacks`).

Hydra calls `on_multirun_start` before the sweeper and launcher exist and `on_multirun_end` after
every job has returned, both in the launching process, whatever the launcher. Hydra turns an
exception raised here into a warning and skips `on_multirun_end` when a job raised: the launching
side (`fefm_lab.sweep.launch`) therefore checks afterwards that the parent run was ended, and
ends it itself on every other way out. The callback keeps no state (launchers pickle it).
"""

from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

import fefm_lab
from fefm_lab.report.settings import ReportSettings
from fefm_lab.sweep.finish import DEFAULT_UI_PORT, SweepSummary, finish_sweep
from fefm_lab.sweep.parent import open_parent, parent_of
from fefm_lab.tracking.liveness import liveness_tags
from fefm_lab.tracking.store import TrackingStore, open_store, tag_value

# Overrides that `fefm-lab run -m` adds for the jobs: bookkeeping, not part of the user's sweep.
_BOOKKEEPING = ("sweep.invocation=", "sweep.name=", "threads=")


def sweep_store(config: DictConfig) -> TrackingStore:
    """The tracking store of the sweep (its `mlflow` settings; no `${hydra:...}` needed)."""
    tracking = OmegaConf.to_container(config.mlflow, resolve=True)
    return open_store(
        tracking["tracking_uri"], tracking["experiment"], tracking.get("artifact_location")
    )


def end_sweep(
    store: TrackingStore,
    parent_run_id: str,
    *,
    status: str | None = None,
    reason: str = "",
    ui_port: int = DEFAULT_UI_PORT,
    report: ReportSettings | None = None,
) -> SweepSummary:
    """`finish_sweep`, then the summary table, the ablation report and the UI links on stdout."""
    summary = finish_sweep(
        store, parent_run_id, status=status, reason=reason, ui_port=ui_port, report=report
    )
    print(summary.markdown)
    print(f"sweep parent run {parent_run_id} in experiment {store.experiment_name!r}")
    if summary.report:
        print(f"\nablation report (logged to the parent run under report/):\n\n{summary.report}")
    if summary.report_note:
        print(summary.report_note, file=sys.stderr)
    for line in summary.links:
        print(line)
    if summary.links:
        print("(the UI must be running: fefm-lab ui)")
    sys.stdout.flush()
    return summary


class SweepLifecycle(Callback):
    """Opens the sweep's parent run (resumed if the sweep ran before) and ends it."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from fefm_lab.tracking.run_logging import git_commit

        name, invocation = config.sweep.name, config.sweep.invocation
        if not name or not invocation:
            raise ValueError("sweep.name and sweep.invocation are set by `fefm-lab run -m`")
        overrides = [o for o in config.hydra.overrides.task if not o.startswith(_BOOKKEEPING)]
        tags = {
            "git_commit": git_commit(),
            "fefm_lab_version": fefm_lab.__version__,
            "overrides": tag_value(" ".join(overrides)),
            **liveness_tags(),  # the launching process: how a later start tells it is gone
        }
        store = sweep_store(config)
        parent_id, resumed = open_parent(store, str(name), str(invocation), tags)
        print(
            f"sweep {name!r}: parent run {parent_id}"
            + (" (resumed: finished configurations are skipped)" if resumed else ""),
            file=sys.stderr,
            flush=True,
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        store = sweep_store(config)
        parent = parent_of(store, str(config.sweep.invocation))
        if parent is not None and parent.info.status == "RUNNING":
            settings = ReportSettings.from_config(
                OmegaConf.to_container(config.report, resolve=True)
            )
            end_sweep(
                store, parent.info.run_id, ui_port=int(config.mlflow.ui_port), report=settings
            )
