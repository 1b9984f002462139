"""A `fefm-lab run -m` in a process group of its own, for tests that signal or kill sweeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fefm_lab.report.ablation_table import runs_frame, sweep_runs
from fefm_lab.report.adaptive_study import TAG_ADAPTIVE, adaptive_rows
from fefm_lab.tracking.store import TrackingStore, open_store

WAIT_S = 300
# A tiny adaptive study's settings (the tests add the sweeper and their ablations): seeds 2 then
# one more up to 3, margins the tiny runs can settle, 3,000 rows of debug=tiny training.
TINY_STUDY = [
    "hydra.sweeper.first_seeds=2", "hydra.sweeper.max_seeds=3", "hydra.sweeper.seeds_per_look=1",
    "report.margin.auc=0.001", "report.margin.logloss=0.05",
    "debug=tiny", "dataset.synthetic.rows=3000",
]  # fmt: skip


class Sweep:
    """A `fefm-lab run -m` process in a session of its own (so its whole group can be signalled)."""

    def __init__(self, root: Path, experiment: str, arguments: list[str]) -> None:
        self.store = open_store(f"sqlite:///{root}/mlflow.db", experiment)  # exists before polling
        command = [
            str(Path(sys.executable).parent / "fefm-lab"), "run", "-m", *arguments,
            f"paths.root_dir={root}", f"mlflow.experiment={experiment}",
        ]  # fmt: skip
        self.log = (root / f"{experiment}.log").open("w+")
        self.process = subprocess.Popen(
            command, cwd=root, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def wait_for_running_jobs(self, count: int) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            running = self.store.search("tags.role = 'job' and attributes.status = 'RUNNING'")
            if len(running) >= count:
                return
            if self.process.poll() is not None:
                pytest.fail(f"the sweep ended before {count} job(s) ran:\n{self.output()}")
            time.sleep(0.5)
        pytest.fail(f"no {count} RUNNING job run(s) after {WAIT_S} s:\n{self.output()}")

    def wait(self) -> int:
        return self.process.wait(timeout=WAIT_S)

    def group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def wait_group_gone(self, timeout_s: float = 60) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.5)
        return not self.group_alive()

    def stop(self) -> None:
        if self.group_alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)
        self.log.close()


def adaptive_outcome(store: TrackingStore) -> tuple[dict, dict, dict]:
    """An adaptive-seeds sweep's end in `store` (its one sweep): (ablation, seed) -> (test AUC,
    log loss) of the finished runs; the seeds and verdicts per ablation (the report's adaptive
    section); the parent's recorded settings."""
    (parent,) = store.search("tags.role = 'sweep'")
    runs = runs_frame(sweep_runs(store, parent))
    settings = json.loads(parent.data.tags[TAG_ADAPTIVE])
    metrics = {
        (row.ablation, row.seed): (row.auc, row.logloss) for row in runs.itertuples(index=False)
    }
    rows = adaptive_rows(runs, settings)
    verdicts = {
        row["ablation"]: (row["seeds"], row["AUC verdict"], row["log loss verdict"])
        for _, row in rows.iterrows()
    }
    return metrics, verdicts, settings
