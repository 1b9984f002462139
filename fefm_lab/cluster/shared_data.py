"""A sweep's datasets prepared once, by the launching process, on storage the jobs share.

N jobs on N workers must not prepare the same file N times (nor need the raw file at all): the
launching process prepares every distinct dataset of the sweep under `paths.data_root` before
the first job starts, and hands the jobs the fingerprints it produced (`sweep.data_fingerprints`;
datasets it could not prepare are listed in `sweep.unprepared`, and their jobs fail on their own).
A job then only reuses them (`fefm_lab.data.shared.dataset_for_job`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fefm_lab.config.dataset import validate_dataset_config
from fefm_lab.data.shared import FINGERPRINTS_KEY, UNPREPARED_KEY, preparation_key
from fefm_lab.errors import UserError


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
        dataset = validate_dataset_config(resolved["dataset"])
        key = preparation_key(dataset, resolved["seed"], resolved["paths"]["data_root"])
        if key in done:
            continue
        try:
            done[key] = prepare(
                dataset,
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
