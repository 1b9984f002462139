"""What Hydra runs per sweep job, in whatever process or machine the launcher picks."""

from __future__ import annotations

import hashlib
import json
import sys

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fefm_lab.config.job_config import JobConfig
from fefm_lab.sweep.parent import parent_of, record_unrun
from fefm_lab.tracking.store import record_reuse
from fefm_lab.uris import masked_text, masked_uri


class SweepJobError(Exception):
    """A job failed outside its own run (no tracking store or parent run it could reach).

    Raised so that Hydra hands it back to the launching process as the job's return value.
    """


def _job_label() -> str:
    try:
        return " ".join(HydraConfig.get().overrides.task) or "(no overrides)"
    except ValueError:  # not inside a Hydra job (a test calling the function directly)
        return "(outside Hydra)"


def run_sweep_job(cfg: DictConfig):
    """Find the sweep's parent run, run the job under it, return its `JobOutcome`.

    Module level, so launchers that pickle the task (joblib, Ray, submitit) import it by name.
    `cfg` is the launcher's composition of the job (on the host that runs it): resolved,
    validated and typed here, once. Training failures come back as a FAILED outcome (recorded in
    the job's run); a failure to reach the tracking store or the parent run raises
    `SweepJobError`.
    """
    from fefm_lab.config.compose import job_of
    from fefm_lab.runner import run_job, tracking_store

    job = job_of(cfg)
    tracking_uri = masked_uri(job.mlflow.tracking_uri)
    invocation = job.sweep.invocation
    try:
        store = tracking_store(job.mlflow)
        parent = parent_of(store, invocation) if invocation else None
    except Exception as error:  # reported to the launching process, with context
        raise SweepJobError(
            f"sweep job {_job_label()}: cannot reach the tracking store {tracking_uri}: "
            f"{type(error).__name__}: {masked_text(str(error))}"
        ) from None
    if parent is None:
        raise SweepJobError(
            f"sweep job {_job_label()}: no parent run of sweep invocation {invocation!r} in "
            f"{tracking_uri} (the sweep's start failed: see the warning before the jobs)"
        )
    parent_id = parent.info.run_id
    job = job.with_parent_run(parent_id)
    outcome = run_job(job)
    if outcome.message:  # the job's own line in the sweep's output (the summary repeats it)
        print(outcome.message, file=sys.stderr, flush=True)
    if outcome.status == "already_finished" and outcome.run_id:
        record_reuse(store, parent_id, outcome.config_hash, outcome.run_id)
    elif outcome.status == "failed" and not outcome.run_id:
        record_unrun(store, parent_id, _job_key(job), outcome.name, outcome.reason)
    return outcome


def _job_key(job: JobConfig) -> str:
    """Names the job within its sweep: a digest of its config (sweep bookkeeping left out)."""
    values = job.record()
    values.pop("sweep", None)
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
