"""Runs whose process is gone are reaped (KILLED with the reason); live ones are left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from fefm_lab.tracking.liveness import (
    HEARTBEAT_TIMEOUT_S,
    TAG_HEARTBEAT,
    TAG_HOST,
    TAG_PID,
    TAG_PID_START,
    TAG_SLURM_JOB,
    heartbeat,
    host_name,
    keep_alive,
    liveness_tags,
    pid_alive,
    process_start_ticks,
)
from fefm_lab.tracking.resume import reopen_run
from fefm_lab.tracking.store import open_store
from fefm_lab.training.checkpoint import Position, TrainingState


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> str:
    """One database for the module (creating one takes seconds), an experiment per test."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture
def store(database: str, request):
    return open_store(database, request.node.name)


@pytest.fixture
def killed_pid():
    """(pid, start ticks) of a real process that was SIGKILLed and waited for."""
    process = subprocess.Popen(["sleep", "600"])
    try:
        start = process_start_ticks(process.pid)
        assert pid_alive(process.pid, start)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    return process.pid, start


def _run(store, name: str, tags: dict[str, str], config_hash: str = "h1") -> str:
    run = store.client.create_run(
        store.experiment_id, run_name=name, tags={**tags, "config_hash": config_hash}
    )
    return run.info.run_id


def test_this_process_is_alive_with_its_tags() -> None:
    tags = liveness_tags()
    assert tags[TAG_HOST] == host_name() and tags[TAG_PID] == str(os.getpid())
    assert abs(float(tags[TAG_HEARTBEAT]) - time.time()) < 60
    assert pid_alive(os.getpid(), tags.get(TAG_PID_START))
    if TAG_PID_START in tags:  # Linux: the same pid with another start time is another process
        assert not pid_alive(os.getpid(), str(int(tags[TAG_PID_START]) + 1))


def test_run_of_a_killed_process_is_reaped_and_live_ones_are_not(store, killed_pid) -> None:
    pid, start = killed_pid
    dead = _run(store, "dead", {TAG_HOST: host_name(), TAG_PID: str(pid), TAG_PID_START: start})
    alive = _run(store, "alive", liveness_tags())
    other_hash = _run(store, "dead, other config", {TAG_HOST: host_name(), TAG_PID: str(pid)}, "h2")

    reaped = store.reap_dead_runs(config_hash="h1")

    assert [run_id for run_id, _ in reaped] == [dead]
    run = store.client.get_run(dead)
    assert run.info.status == "KILLED"
    assert run.data.tags["outcome"] == "killed"
    assert run.data.tags["reason"] == (
        f"reaped: process {pid} on host {host_name()} is gone (found by process {os.getpid()})"
    )
    assert store.client.get_run(alive).info.status == "RUNNING"
    assert store.client.get_run(other_hash).info.status == "RUNNING"  # not this configuration
    assert [r for r, _ in store.reap_dead_runs()] == [other_hash]  # no filter: every dead run
    assert store.reap_dead_runs() == []


def test_run_on_another_host_is_reaped_after_the_heartbeat_timeout(store) -> None:
    old = f"{time.time() - HEARTBEAT_TIMEOUT_S - 30:.3f}"
    silent = _run(store, "silent", {TAG_HOST: "elsewhere", TAG_PID: "1", TAG_HEARTBEAT: old})
    beating = _run(store, "beating", {TAG_HOST: "elsewhere", TAG_PID: "1", TAG_HEARTBEAT: old})
    heartbeat(store.client, beating)  # a fresh beat keeps it

    reaped = dict(store.reap_dead_runs())

    assert list(reaped) == [silent]
    assert reaped[silent].startswith("no heartbeat from process 1 on host elsewhere for 6")
    assert reaped[silent].endswith(f"s (timeout {HEARTBEAT_TIMEOUT_S:.0f} s)")
    assert store.client.get_run(beating).info.status == "RUNNING"
    assert store.client.get_run(silent).info.status == "KILLED"


def test_keep_alive_refreshes_the_heartbeat(store) -> None:
    run_id = _run(store, "beating", {TAG_HEARTBEAT: "0"})
    with keep_alive(store.client, run_id, every_s=0.05):
        deadline = time.monotonic() + 20
        while store.client.get_run(run_id).data.tags[TAG_HEARTBEAT] == "0":
            assert time.monotonic() < deadline, "no heartbeat within 20 s"
            time.sleep(0.05)
    assert abs(float(store.client.get_run(run_id).data.tags[TAG_HEARTBEAT]) - time.time()) < 20


def test_a_process_in_a_slurm_job_names_it(monkeypatch) -> None:
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    assert TAG_SLURM_JOB not in liveness_tags()
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert liveness_tags()[TAG_SLURM_JOB] == "4242"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "4200")  # an array task: as squeue names it
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert liveness_tags()[TAG_SLURM_JOB] == "4200_3"


def test_a_continued_run_names_the_process_that_continues_it(store, killed_pid) -> None:
    """A requeued job continues its run in another process: the run must not look dead."""
    pid, start = killed_pid
    run_id = _run(
        store, "requeued", {TAG_HOST: host_name(), TAG_PID: str(pid), TAG_PID_START: start}
    )
    store.client.set_terminated(run_id, "KILLED")
    state = TrainingState(
        Position(epoch=1, batches_done=3, steps=3), [], [], None, [], "h1", run_id
    )
    reopen_run(store.client, store.client.get_run(run_id), state)
    assert store.client.get_run(run_id).data.tags[TAG_PID] == str(os.getpid())
    assert store.reap_dead_runs(config_hash="h1") == []
