"""A sweep's datasets prepared once, by the launching process, on storage the jobs share.

N jobs on N workers must not prepare the same file N times (nor need the raw file at all): the
launching process prepares every distinct dataset of the sweep under `paths.data_root` before
the first job starts, and hands the jobs the fingerprints it produced (`sweep.data_fingerprints`).
A job then only reuses: it finds the prepared directory under its `paths.data_root`, checks that
its fingerprint is one the launching process prepared, and otherwise fails with a message that
says what is wrong (the directory is not shared, or holds other data).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fefm_lab.errors import DataError

FINGERPRINTS_KEY = "data_fingerprints"  # under `sweep`


def _preparation_key(resolved: Mapping[str, Any]) -> str:
    """Jobs with equal keys use the same prepared dataset (same settings, same split seed)."""
    dataset = resolved["dataset"]
    split_seed = dataset.get("split_seed")
    seed = resolved["seed"] if split_seed is None else split_seed
    return json.dumps([dataset, seed, resolved["paths"]["data_root"]], sort_keys=True)


def prepare_sweep_datasets(configs: Iterable[Mapping[str, Any]], *, progress: bool = True):
    """Prepare (or reuse) each distinct dataset of a sweep's jobs once; their PreparedData."""
    from fefm_lab.data import prepare

    prepared = {}
    for resolved in configs:
        key = _preparation_key(resolved)
        if key not in prepared:
            prepared[key] = prepare(
                resolved["dataset"],
                seed=resolved["seed"],
                data_root=Path(resolved["paths"]["data_root"]),
                progress=progress,
            )
    return list(prepared.values())


def fingerprints_override(prepared) -> list[str]:
    """The override that tells the jobs which prepared datasets to expect."""
    quoted = ",".join(f"'{data.manifest['fingerprint']}'" for data in prepared)
    return [f"sweep.{FINGERPRINTS_KEY}=[{quoted}]"]


def dataset_for_job(resolved: Mapping[str, Any]):
    """The job's prepared dataset: prepared here, or (in a sweep whose launching process
    prepared it) found under `paths.data_root` and checked against the expected fingerprints."""
    from fefm_lab.data import prepare
    from fefm_lab.data.prepare import PreparedDataMissing

    data_root = Path(resolved["paths"]["data_root"])
    expected = list((resolved.get("sweep") or {}).get(FINGERPRINTS_KEY) or [])
    if not expected:
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
