"""Continuing a killed run in its own MLflow run, from its checkpoint.

When a job starts and its configuration has no FINISHED run (contract 4), the checkpoint under
`<checkpoint_dir>/<config_hash>/` decides: it names the run it was saved for; when that run is in
this experiment, carries the same config hash and is RUNNING (its process is gone: the
checkpoint's lock was free) or KILLED (signalled, reaped), the job continues that run from the
checkpoint: status back to RUNNING, per-epoch metrics continuing where they stopped. Any other
checkpoint is ignored with a warning and the job starts a new run from scratch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fefm_lab.tracking.liveness import liveness_tags
from fefm_lab.tracking.run_logging import log_epoch
from fefm_lab.tracking.store import (
    TAG_CODE_VERSION,
    TAG_CONFIG_HASH,
    TAG_OUTCOME,
    TAG_REASON,
    TrackingStore,
)
from fefm_lab.training.checkpoint import CheckpointDirectory, TrainingState
from fefm_lab.uris import masked_uri

LOG = logging.getLogger(__name__)
RESUMABLE_STATUSES = ("RUNNING", "KILLED")
TAG_RESUMED = "resumed"  # how often the run was continued, and from where last


@dataclass
class Continuation:
    """The job's checkpoint directory (locked), and the run and state to continue, if any."""

    checkpoints: CheckpointDirectory
    state: TrainingState | None = None
    run: Run | None = field(default=None, repr=False)

    @property
    def run_id(self) -> str | None:
        return self.run.info.run_id if self.run is not None else None


def _run_or_none(client: MlflowClient, run_id: str) -> Run | None:
    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def _why_not(run: Run | None, store: TrackingStore, state: TrainingState, digest: str) -> str:
    if run is None:
        where = masked_uri(store.tracking_uri)
        return f"its run {state.run_id!r} is not in the tracking store {where}"
    if run.info.experiment_id != store.experiment_id:
        return f"its run {state.run_id} is in another experiment"
    if run.data.tags.get(TAG_CONFIG_HASH) != digest:
        return f"its run {state.run_id} has config hash {run.data.tags.get(TAG_CONFIG_HASH)!r}"
    if run.info.status not in RESUMABLE_STATUSES:
        return f"its run {state.run_id} is {run.info.status}"
    return ""


def find_continuation(store: TrackingStore, checkpoint_root: str | Path, digest: str):
    """Lock this configuration's checkpoint directory and decide what to continue.

    Raises CheckpointInUse when another live process trains the configuration.
    """
    checkpoints = CheckpointDirectory(checkpoint_root, digest)
    checkpoints.lock()
    state = checkpoints.load()
    if state is None:
        return Continuation(checkpoints)
    run = _run_or_none(store.client, state.run_id)
    problem = _why_not(run, store, state, digest)
    if problem:
        LOG.warning(
            "not resuming from checkpoint %s: %s; training starts over", checkpoints.path, problem
        )
        return Continuation(checkpoints)
    return Continuation(checkpoints, state, run)


def reopen_run(client: MlflowClient, run: Run, state: TrainingState) -> None:
    """Status back to RUNNING; the kill's outcome and reason go, a `resumed` tag says from where,
    and the liveness tags name this process (a requeued job runs in another one)."""
    run_id = run.info.run_id
    client.update_run(run_id, status="RUNNING")
    for key, value in liveness_tags().items():
        client.set_tag(run_id, key, value)
    for key in (TAG_OUTCOME, TAG_REASON):
        if key in run.data.tags:
            client.delete_tag(run_id, key)
    count = int(run.data.tags.get(TAG_RESUMED, "0 ").split(" ")[0] or 0) + 1
    client.set_tag(run_id, TAG_RESUMED, f"{count} time(s), last from {state.describe()}")


def backfill_epochs(client: MlflowClient, run_id: str, history: list[dict[str, float]]) -> int:
    """Log the checkpoint's epochs the run lacks (killed between saving and logging them)."""
    logged = {metric.step for metric in client.get_metric_history(run_id, "val_logloss")}
    missing = [record for record in history if int(record["epoch"]) not in logged]
    for record in missing:
        log_epoch(client, run_id, int(record["epoch"]), record)
    return len(missing)


@dataclass(frozen=True)
class StaleCheckpoints:
    """Checkpoints no start of this code continues (see `stale_checkpoints`)."""

    root: Path
    directories: list[Path]
    total_bytes: int

    def describe(self) -> str:
        """`2 stale checkpoints, 0.04 GiB, under DIR: a1b2..., c3d4...` with what to do."""
        names = ", ".join(d.name for d in self.directories)
        return (
            f"{len(self.directories)} stale checkpoint(s), {self.total_bytes / 2**30:.2f} GiB, "
            f"under {self.root}: {names} (their runs are gone or of another code version, so "
            "no start continues them; delete those directories to free the space)"
        )


def stale_checkpoints(
    store: TrackingStore, checkpoint_root: str | Path, code_version: str
) -> StaleCheckpoints | None:
    """Checkpoint directories under `checkpoint_root` that nothing will continue: not locked by
    a live process, and saved for a run that is not in the store or was made by another code
    version (its config hash includes the code version, so no start of this code finds it)."""
    root = Path(checkpoint_root)
    stale, total = [], 0
    for directory in sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []:
        checkpoints = CheckpointDirectory(root, directory.name)
        if not checkpoints.path.is_file() or checkpoints.held_by_a_live_process():
            continue
        run_id = checkpoints.saved_for_run()
        run = _run_or_none(store.client, run_id) if run_id else None
        if run is not None and run.data.tags.get(TAG_CODE_VERSION) in (code_version, None):
            continue
        stale.append(directory)
        total += sum(f.stat().st_size for f in directory.iterdir() if f.is_file())
    return StaleCheckpoints(root, stale, total) if stale else None
