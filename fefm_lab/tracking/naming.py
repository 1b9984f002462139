"""What a job run is called and tagged: the names the report and the MLflow UI read.

Tags: `model`, `ablation` (read from the flags, `fefm_lab.config.ablation.ablation_label`),
`dataset`, `seed`, `sweep`, `config_hash`, `data_fingerprint`, `code_version`, `git_commit`,
`fefm_lab_version`, `role=job`, the liveness tags and, in a sweep, `mlflow.parentRunId`
(docs/architecture.md lists who reads which).
"""

from __future__ import annotations

import fefm_lab
from fefm_lab.config.job_config import JobConfig
from fefm_lab.tracking.confighash import RunIdentity
from fefm_lab.tracking.liveness import liveness_tags
from fefm_lab.tracking.run_logging import git_commit
from fefm_lab.tracking.store import (
    ROLE_JOB,
    TAG_CODE_VERSION,
    TAG_CONFIG_HASH,
    TAG_DATA_FINGERPRINT,
    TAG_PARENT,
    TAG_ROLE,
    TAG_SWEEP,
)


def run_tags(job: JobConfig, identity: RunIdentity) -> dict[str, str]:
    """Tags a job run carries: what it is, where it comes from, which sweep it belongs to, and
    which process runs it (host, pid, heartbeat: see `fefm_lab.tracking.liveness`)."""
    tags = {
        **configuration_tags(job),
        TAG_SWEEP: str(job.sweep.name or "none"),
        TAG_CONFIG_HASH: identity.config_hash,
        TAG_DATA_FINGERPRINT: identity.data_fingerprint,
        TAG_CODE_VERSION: identity.code_version,
        "git_commit": git_commit(),
        "fefm_lab_version": fefm_lab.__version__,
        **liveness_tags(),
    }
    if job.sweep.parent_run_id:
        tags[TAG_PARENT] = str(job.sweep.parent_run_id)
    return tags


# The tags that say which configuration a job run is, whatever code version ran it.
CONFIGURATION_TAGS = ("model", "ablation", "dataset", "seed", TAG_ROLE)


def configuration_tags(job: JobConfig) -> dict[str, str]:
    """The `CONFIGURATION_TAGS` of a job run of `job` (for reaping across upgrades)."""
    tags = {
        "model": job.model.name,
        "ablation": job.ablation,
        "dataset": job.dataset.name or job.dataset.format,
        "seed": str(job.seed),
        TAG_ROLE: ROLE_JOB,
    }
    return {key: tags[key] for key in CONFIGURATION_TAGS}


def run_name(job: JobConfig) -> str:
    """`deepfefm no_linear synthetic seed=2`: model, ablation label, dataset, seed."""
    dataset = job.dataset.name or job.dataset.format
    return f"{job.model.name} {job.ablation} {dataset} seed={job.seed}"
