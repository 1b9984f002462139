"""A sweep's datasets prepared once, by the launching process, on storage the jobs share.

N jobs on N workers must not prepare the same file N times (nor need the raw file at all): the
launching process prepares every distinct dataset of the sweep under `paths.data_root` before
the first job starts, and hands the jobs the fingerprints it produced (`sweep.data_fingerprints`;
datasets it could not prepare are listed in `sweep.unprepared`, and their jobs fail on their own).
A job then only reuses: it finds the prepared directory under its `paths.data_root`, checks that
its fingerprint is one the launching process prepared, and otherwise fails with a message that
says what is wrong (the directory is not shared, or holds other data).
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fefm_lab.errors import DataError, UserError

FINGERPRINTS_KEY = "data_fingerprints"  # under `sweep`
UNPREPARED_KEY = "unprepared"  # under `sweep`


def preparation_key(resolved: Mapping[str, Any]) -> str:
    """Jobs with equal keys use the same prepared dataset (same settings, same split seed, same
    data_root): 16 hex digits, the same wherever the job runs."""
    dataset = resolved["dataset"]
    split_seed = dataset.get("split_seed")
    seed = resolved["seed"] if split_seed is None else split_seed
    text = json.dumps([dataset, seed, resolved["paths"]["data_root"]], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class SweepData:
    """What the launching process prepared: the datasets, and the keys of those that failed
    (bad raw data: each job using one fails in its own run, with the file and line)."""

    prepared: list = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def overrides(self) -> list[str]:
        """The overrides that tell the jobs what to expect."""
        fingerprints = ",".join(f"'{data.manifest['fingerprint']}'" for data in self.prepared)
        failed = ",".join(f"'{key}'" for key in self.failed)
        return [
            f"sweep.{FINGERPRINTS_KEY}=[{fingerprints}]",
            f"sweep.{UNPREPARED_KEY}=[{failed}]",
        ]


def prepare_sweep_datasets(
    configs: Iterable[Mapping[str, Any]], *, progress: bool = True
) -> SweepData:
    """Prepare (or reuse) each distinct dataset of a sweep's jobs once.

    A dataset that cannot be prepared (a bad row, a missing file) does not stop the sweep: its
    jobs prepare it themselves and fail in their own runs with the same message, while the
    other jobs go on.
    """
    from fefm_lab.data import prepare

    done: dict[str, Any] = {}
    result = SweepData()
    for resolved in configs:
        key = preparation_key(resolved)
        if key in done:
            continue
        try:
            done[key] = prepare(
                resolved["dataset"],
                seed=resolved["seed"],
                data_root=Path(resolved["paths"]["data_root"]),
                progress=progress,
            )
            result.prepared.append(done[key])
        except UserError as error:
            done[key] = None
            result.failed.append(key)
            print(f"preparing the data of a sweep job failed ({error}); its jobs will fail with "
                  "this reason", file=sys.stderr, flush=True)  # fmt: skip
    return result


def dataset_for_job(resolved: Mapping[str, Any]):
    """The job's prepared dataset: prepared here, or (in a sweep whose launching process
    prepared it) found under `paths.data_root` and checked against the expected fingerprints."""
    from fefm_lab.data import prepare
    from fefm_lab.data.prepare import PreparedDataMissing

    data_root = Path(resolved["paths"]["data_root"])
    sweep = resolved.get("sweep") or {}
    expected = list(sweep.get(FINGERPRINTS_KEY) or [])
    if not expected or preparation_key(resolved) in (sweep.get(UNPREPARED_KEY) or []):
        return prepare(
            resolved["dataset"],
            seed=resolved["seed"],
            data_root=data_root,
            # the passes over a raw file can take many minutes: shown as training's progress is
            progress=bool((resolved.get("trainer") or {}).get("verbose")),
        )
    host = socket.gethostname()
    try:
        data = prepare(
            resolved["dataset"],
            seed=resolved["seed"],
            data_root=data_root,
            progress=False,
            reuse_only=True,
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
