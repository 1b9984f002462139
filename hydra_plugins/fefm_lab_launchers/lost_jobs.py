"""A job that ended without a result (its Ray worker died, its Slurm job was cancelled): what
fefm-lab's launchers hand back to Hydra for it."""

from __future__ import annotations

import logging

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def lost_job_return(
    overrides: list[str], sweep_config: DictConfig, reason: str, error: type[Exception]
) -> JobReturn:
    """A FAILED JobReturn whose value is `error(reason)`; the job's RUNNING MLflow run (if any)
    marked KILLED with the reason."""
    from fefm_lab.sweep.lost_jobs import record_lost_job

    reason = reason[:2000]
    run_id = record_lost_job(sweep_config, reason)
    log.error(f"job {' '.join(overrides)}: {reason}; run {run_id or '(none running)'} KILLED")
    lost = JobReturn(
        overrides=overrides,
        cfg=sweep_config,
        hydra_cfg=sweep_config.hydra,
        task_name=str(sweep_config.hydra.job.name),
        status=JobStatus.FAILED,
    )
    lost.return_value = error(f"job {' '.join(overrides)}: {reason}")
    return lost
