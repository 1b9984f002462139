"""What a job run is called and tagged: the names the report and the MLflow UI read.

Tags: `model`, `ablation` (read from the flags, `fefm_lab.config.ablation.ablation_label`),
`dataset`, `seed`, `sweep`, `config_hash`, `data_fingerprint`, `code_version`, `git_commit`,
`fefm_lab_version`, `role=job`, the liveness tags and, in a sweep, `mlflow.parentRunId`
(docs/architecture.md lists who reads which).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import fefm_lab
from fefm_lab.config.ablation import ablation_label
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


def dataset_name(resolved: Mapping[str, Any]) -> str:
    dataset = resolved.get("dataset") or {}
    return str(dataset.get("name") or dataset.get("format") or "unknown")


def run_tags(resolved: Mapping[str, Any], identity: RunIdentity) -> dict[str, str]:
    """Tags a job run carries: what it is, where it comes from, which sweep it belongs to, and
    which process runs it (host, pid, heartbeat: see `fefm_lab.tracking.liveness`)."""
    tags = {
        **configuration_tags(resolved),
        TAG_SWEEP: str(resolved.get("sweep", {}).get("name") or "none"),
        TAG_CONFIG_HASH: identity.config_hash,
        TAG_DATA_FINGERPRINT: identity.data_fingerprint,
        TAG_CODE_VERSION: identity.code_version,
        "git_commit": git_commit(),
        "fefm_lab_version": fefm_lab.__version__,
        **liveness_tags(),
    }
    parent = resolved.get("sweep", {}).get("parent_run_id")
    if parent:
        tags[TAG_PARENT] = str(parent)
    return tags


# The tags that say which configuration a job run is, whatever code version ran it.
CONFIGURATION_TAGS = ("model", "ablation", "dataset", "seed", TAG_ROLE)


def configuration_tags(resolved: Mapping[str, Any]) -> dict[str, str]:
    """The `CONFIGURATION_TAGS` of a job run of `resolved` (for reaping across upgrades)."""
    tags = {
        "model": str(resolved["model"]["name"]),
        "ablation": ablation_label(resolved),
        "dataset": dataset_name(resolved),
        "seed": str(resolved["seed"]),
        TAG_ROLE: ROLE_JOB,
    }
    return {key: tags[key] for key in CONFIGURATION_TAGS}


def run_name(resolved: Mapping[str, Any]) -> str:
    """`deepfefm no_linear synthetic seed=2`: model, ablation label, dataset, seed."""
    return (
        f"{resolved['model']['name']} {ablation_label(resolved)} "
        f"{dataset_name(resolved)} seed={resolved['seed']}"
    )
