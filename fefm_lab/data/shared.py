"""A job's prepared dataset: prepared by the job, or reused from storage its sweep's nodes share.

In a sweep the launching process prepares every distinct dataset once
(`fefm_lab.cluster.shared_data`) and hands the jobs the fingerprints it produced
(`sweep.data_fingerprints`; datasets it could not prepare are listed in `sweep.unprepared`, and
their jobs prepare them and fail on their own). A job then only reuses: it finds the prepared
directory under its `paths.data_root`, checks that its fingerprint is one the launching process
prepared, and otherwise fails with a message that says what is wrong (the directory is not
shared, or holds other data).
"""

from __future__ import annotations

import hashlib
import json
import socket
from dataclasses import asdict
from pathlib import Path

from fefm_lab.config.dataset import DatasetConfig
from fefm_lab.config.schema import SweepConfig
from fefm_lab.data.prepare import PreparedDataMissing, prepare
from fefm_lab.data.prepared import PreparedData
from fefm_lab.errors import DataError

FINGERPRINTS_KEY = "data_fingerprints"  # under `sweep`
UNPREPARED_KEY = "unprepared"  # under `sweep`


def preparation_key(dataset: DatasetConfig, seed: int, data_root: str) -> str:
    """Jobs with equal keys use the same prepared dataset (same settings, same split seed, same
    data_root): 16 hex digits, the same wherever the job runs."""
    split_seed = seed if dataset.split_seed is None else dataset.split_seed
    text = json.dumps([asdict(dataset), split_seed, str(data_root)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dataset_for_job(
    dataset: DatasetConfig, *, seed: int, data_root: str, sweep: SweepConfig, progress: bool
) -> PreparedData:
    """The job's prepared dataset: prepared here, or (in a sweep whose launching process
    prepared it: `sweep.data_fingerprints`) found under `data_root` and checked against the
    expected fingerprints. `progress`: show the passes over a raw file (they can take minutes)."""
    expected = list(sweep.data_fingerprints or [])
    if not expected or preparation_key(dataset, seed, data_root) in (sweep.unprepared or []):
        return prepare(dataset, seed=seed, data_root=Path(data_root), progress=progress)
    host = socket.gethostname()
    try:
        data = prepare(
            dataset, seed=seed, data_root=Path(data_root), progress=False, reuse_only=True
        )
    except PreparedDataMissing as missing:
        raise DataError(
            f"paths.data_root={data_root}: this job (on host {host}) does not see the dataset the "
            f"sweep's launching process prepared ({missing}); paths.data_root must be a "
            "directory every node sees, at the same path (a shared filesystem)"
        ) from None
    fingerprint = data.manifest.get("fingerprint")
    if fingerprint not in expected:
        raise DataError(
            f"{data.directory}: prepared dataset fingerprint {fingerprint} on host {host} is not "
            f"one the sweep's launching process prepared ({', '.join(expected)}): "
            f"paths.data_root={data_root} holds other data on this node"
        )
    return data
