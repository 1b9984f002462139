"""Real `fefm-lab run -m` processes stopped by real signals: nothing is left RUNNING.

Each test starts the installed command on tiny synthetic data with jobs that would train for
hours, waits until the tracking store shows them RUNNING, sends the signal, and reads the store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fefm_lab.sweep.launch import stop_local_jobs
from fefm_lab.sweep.parent import open_parent
from fefm_lab.tracking.store import TrackingStore, open_store
from tests.sweep.sweep_process import WAIT_S, Sweep

pytestmark = pytest.mark.slow

TINY = ["debug=tiny", "dataset.synthetic.rows=3000"]
# Jobs that only a signal ends: early stopping never triggers, the epochs never run out.
ENDLESS = [*TINY, "trainer.max_epochs=1000000", "trainer.early_stopping.patience=1000000"]
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


@pytest.fixture
def sweeps(tmp_path: Path) -> Iterator[list[Sweep]]:
    started: list[Sweep] = []
    yield started
    for sweep in started:  # whatever a test left behind, nothing outlives it
        sweep.stop()


def _runs(store: TrackingStore) -> tuple:
    parents = store.search("tags.role = 'sweep'")
    jobs = store.search("tags.role = 'job'")
    return parents, jobs


def test_ctrl_c_of_a_joblib_sweep_closes_parent_and_children(tmp_path, sweeps) -> None:
    sweep = Sweep(tmp_path, "ctrl_c", [*ENDLESS, *JOBLIB, "seed=1,2"])
    sweeps.append(sweep)
    sweep.wait_for_running_jobs(2)
    os.killpg(sweep.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    assert sweep.wait() == 130, sweep.output()
    assert sweep.wait_group_gone(), "joblib workers outlived the interrupted sweep"
    (parent,), jobs = _runs(sweep.store)
    assert parent.info.status == "KILLED"
    assert parent.data.tags["reason"] == "sweep interrupted (Ctrl-C)"
    assert sorted(j.info.status for j in jobs) == ["KILLED", "KILLED"]
    # Recorded by the job itself (its own stop handling) or, if joblib ended it first, by the
    # launcher: either way the reason names the interrupt.
    assert all(
        ("Ctrl-C" in j.data.tags["reason"]) or ("SIGINT" in j.data.tags["reason"]) for j in jobs
    )
    assert "Traceback" not in sweep.output()


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_sigterm_of_the_launcher_closes_parent_and_children(tmp_path, sweeps, launcher) -> None:
    arguments = [*ENDLESS, "seed=1,2"] + (JOBLIB if launcher == "joblib" else [])
    sweep = Sweep(tmp_path, f"sigterm_{launcher}", arguments)
    sweeps.append(sweep)
    sweep.wait_for_running_jobs(2 if launcher == "joblib" else 1)
    sweep.process.send_signal(signal.SIGTERM)  # to the launching process only
    assert sweep.wait() == 128 + signal.SIGTERM, sweep.output()
    assert sweep.wait_group_gone(), "job processes outlived the terminated sweep"
    (parent,), jobs = _runs(sweep.store)
    assert parent.info.status == "KILLED"
    assert parent.data.tags["reason"] == "sweep stopped by SIGTERM"
    assert jobs and {j.info.status for j in jobs} == {"KILLED"}
    assert all("SIGTERM" in j.data.tags["reason"] for j in jobs)
    assert "Traceback" not in sweep.output()


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_sigkill_then_the_same_sweep_again_leaves_one_finished_run_each(
    tmp_path, sweeps, launcher
) -> None:
    # Jobs long enough to be caught running, short enough to finish when the sweep is repeated.
    finite = [*TINY, "trainer.max_epochs=12", "trainer.early_stopping.patience=1000"]
    arguments = [*finite, "seed=1,2"] + (JOBLIB if launcher == "joblib" else [])
    first = Sweep(tmp_path, f"sigkill_{launcher}", arguments)
    sweeps.append(first)
    first.wait_for_running_jobs(2 if launcher == "joblib" else 1)
    # SIGKILL: nothing in the killed processes runs again. Under joblib the whole group goes (a
    # machine or session that dies); a worker orphaned alone would finish its job and exit.
    os.killpg(first.process.pid, signal.SIGKILL)
    first.wait()
    assert first.wait_group_gone()

    again = Sweep(tmp_path, f"sigkill_{launcher}", arguments)
    sweeps.append(again)
    assert again.wait() == 0, again.output()
    assert "marked KILLED: process" in again.output()  # the reaping, with its reason
    (parent,), jobs = _runs(again.store)
    assert parent.info.status == "FINISHED"
    assert "RUNNING" not in {j.info.status for j in jobs}
    finished = [j for j in jobs if j.info.status == "FINISHED"]
    assert sorted(j.data.tags["seed"] for j in finished) == ["1", "2"]  # one per configuration
    for job in jobs:
        if job.info.status == "KILLED":
            assert job.data.tags["reason"].startswith("reaped: process ")
    assert parent.data.metrics["runs_finished"] == 2 and parent.data.metrics["runs_total"] == 2


CHILD = """
import signal, sys, time
from fefm_lab.tracking.liveness import liveness_tags
from fefm_lab.tracking.store import open_store
store = open_store(sys.argv[1], sys.argv[2])
tags = {"role": "job", "mlflow.parentRunId": sys.argv[3], **liveness_tags()}
run_id = store.client.create_run(store.experiment_id, tags=tags).info.run_id
def stop(number, frame):
    store.client.set_tag(run_id, "reason", "stopped by SIGTERM")
    store.client.set_terminated(run_id, "KILLED")
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
while True:
    time.sleep(0.1)
"""


def test_a_killed_sweep_stops_its_job_processes_on_this_host(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    store = open_store(uri, "apart")
    parent_id, _ = open_parent(store, "apart", "token", {})
    # A job process apart from the launcher, as submitit_local starts them.
    job = subprocess.Popen([sys.executable, "-c", CHILD, uri, "apart", parent_id])
    try:
        deadline = time.monotonic() + WAIT_S
        while not store.children(parent_id):
            assert job.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        assert stop_local_jobs(store, parent_id) == []  # every signalled job stopped in time
        assert job.wait(timeout=60) == 143
        (run,) = store.children(parent_id)
        assert run.info.status == "KILLED" and run.data.tags["reason"] == "stopped by SIGTERM"
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
