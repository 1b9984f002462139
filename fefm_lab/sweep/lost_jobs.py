"""A sweep job whose worker process died: its MLflow run must not stay RUNNING forever.

The launching process learns from the launcher that a job's worker died (Ray: the task's
worker crashed or its node was lost). The job's run is the RUNNING job run of the job's config
hash under the sweep's parent run (found by the launch's `sweep.invocation`); it is marked
KILLED with the reason, so repeating the sweep reruns that configuration.
"""

from __future__ import annotations

from omegaconf import DictConfig

from fefm_lab.tracking.store import (
    ROLE_JOB,
    TAG_CONFIG_HASH,
    TAG_PARENT,
    TAG_ROLE,
)


def record_lost_job(sweep_config: DictConfig, reason: str) -> str | None:
    """Mark the lost job's RUNNING run KILLED with `reason`; its run id (None if it never
    started a run). Errors reaching the tracking store are reported, not raised: the other
    jobs' results still come back."""
    from fefm_lab.config.compose import job_of
    from fefm_lab.runner import prepare_data, tracking_store
    from fefm_lab.sweep.parent import parent_of
    from fefm_lab.tracking.confighash import run_identity

    try:
        job = job_of(sweep_config)
        # the job's identity needs its data's fingerprint: the launching process prepared it
        digest = run_identity(job.values, prepare_data(job).manifest).config_hash
        store = tracking_store(job.mlflow)
        invocation = job.sweep.invocation
        parent_run = parent_of(store, str(invocation)) if invocation else None
        parent = parent_run.info.run_id if parent_run is not None else None
        query = (
            f"tags.{TAG_CONFIG_HASH} = '{digest}' and tags.{TAG_ROLE} = "
            f"'{ROLE_JOB}' and attributes.status = 'RUNNING'"
        )
        if parent:
            query += f" and tags.{TAG_PARENT} = '{parent}'"
        runs = store.search(query)
    except Exception as error:  # reported: the sweep's other results matter more
        print(f"could not mark the lost job's run KILLED: {type(error).__name__}: {error}")
        return None
    if not runs:
        return None
    run_id = runs[-1].info.run_id
    store.end_run(run_id, "killed", reason)
    return run_id
