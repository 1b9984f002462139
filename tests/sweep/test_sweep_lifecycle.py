"""The parent run's life: the callback that opens and ends it, the summary, closing on failure."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra.utils import instantiate

from fefm_lab import cli
from fefm_lab.errors import ConfigError
from fefm_lab.sweep.callback import SweepLifecycle
from fefm_lab.sweep.finish import finish_sweep, summarize_sweep
from fefm_lab.sweep.job import SweepJobError, run_sweep_job
from fefm_lab.sweep.launch import parent_heartbeat, refuse_if_running
from fefm_lab.sweep.parent import (
    TAG_INVOCATION,
    close_in_flight,
    open_parent,
    parent_of,
    record_unrun,
)
from fefm_lab.tracking.liveness import TAG_HEARTBEAT, TAG_PID, TAG_PID_START, liveness_tags
from fefm_lab.tracking.store import open_store, record_reuse


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """One tracking database for the module (creating one is slow); an experiment per test."""
    return tmp_path_factory.mktemp("lifecycle")


@pytest.fixture
def store(root: Path, request):
    return open_store(f"sqlite:///{root}/mlflow.db", request.node.name, str(root / "artifacts"))


def _job(store, digest: str, status: str, *, parent: str | None = None, auc: float = 0.7) -> str:
    tags = {"role": "job", "config_hash": digest, "outcome": status.lower()}
    if parent:
        tags["mlflow.parentRunId"] = parent
    run_id = store.client.create_run(store.experiment_id, run_name=f"job {digest}", tags=tags)
    run_id = run_id.info.run_id
    if status == "FINISHED":
        store.client.log_metric(run_id, "test_auc", auc)
    if status != "RUNNING":
        store.client.set_terminated(run_id, status)
    return run_id


def test_the_callback_is_listed_in_the_config_and_travels_to_workers() -> None:
    cfg = cli.compose_config([], with_hydra=True)
    callback = instantiate(cfg.hydra.callbacks.sweep_lifecycle)
    assert isinstance(callback, SweepLifecycle)
    assert isinstance(pickle.loads(pickle.dumps(callback)), SweepLifecycle)


def test_the_callback_opens_resumes_and_ends_the_parent(root: Path, capsys) -> None:
    def config(invocation: str):
        overrides = [
            f"paths.root_dir={root}", "mlflow.experiment=cb", "seed=1",
            "sweep.name=study", f"sweep.invocation={invocation}",
        ]  # fmt: skip
        return cli.compose_config(overrides, with_hydra=True)

    SweepLifecycle().on_multirun_start(config=config("one"))
    store = open_store(f"sqlite:///{root}/mlflow.db", "cb")
    parent = parent_of(store, "one")
    assert parent.info.status == "RUNNING" and parent.data.tags["sweep"] == "study"
    assert parent.data.tags["overrides"] == f"paths.root_dir={root} mlflow.experiment=cb seed=1"
    parent_id = parent.info.run_id
    _job(store, "h1", "FINISHED", parent=parent_id, auc=0.75)

    SweepLifecycle().on_multirun_end(config=config("one"))
    ended = store.client.get_run(parent_id)
    assert ended.info.status == "FINISHED" and ended.data.metrics["runs_finished"] == 1
    assert "| job h1 | finished | 0.75000 |" in capsys.readouterr().out

    SweepLifecycle().on_multirun_start(config=config("two"))  # the same sweep again: resumed
    resumed = parent_of(store, "two")
    assert resumed.info.run_id == parent_id and resumed.info.status == "RUNNING"
    assert parent_of(store, "one") is None  # the tag names the launch that has it open
    assert "(resumed: finished configurations are skipped)" in capsys.readouterr().err


def test_the_summary_lists_configurations_reused_from_elsewhere(store) -> None:
    elsewhere = _job(store, "h1", "FINISHED", auc=0.71)  # a single run, or another sweep's
    parent_id, _ = open_parent(store, "s", "token", {})
    own = _job(store, "h2", "FINISHED", parent=parent_id, auc=0.72)
    record_reuse(store, parent_id, "h1", elsewhere)
    summary = finish_sweep(store, parent_id)
    assert {(row["run_id"], row["status"]) for row in summary.rows} == {
        (elsewhere, "finished"),
        (own, "finished"),
    }
    parent = store.client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["runs_total"] == 2
    assert parent.data.tags["reused.h1"] == elsewhere


def test_a_job_that_could_not_open_a_run_is_listed_failed(store) -> None:
    parent_id, _ = open_parent(store, "s", "token", {})
    _job(store, "h1", "FINISHED", parent=parent_id)
    reason = "dataset.path: /data/day_0.gz does not exist"
    record_unrun(store, parent_id, "k1", "deepfefm none criteo seed=1", reason)
    summary = finish_sweep(store, parent_id)
    (row,) = summary.failed
    assert (row["run"], row["status"], row["reason"], row["run_id"]) == (
        "deepfefm none criteo seed=1", "failed", reason, "",
    )  # fmt: skip
    assert store.client.get_run(parent_id).info.status == "FAILED"
    open_parent(store, "s", "again", {})  # the next launch says afresh which jobs failed
    assert [row["status"] for row in summarize_sweep(store, parent_id).rows] == ["finished"]


def test_a_closed_launch_ends_parent_and_in_flight_children(store) -> None:
    parent_id, _ = open_parent(store, "s", "token", {})
    done = _job(store, "h1", "FINISHED", parent=parent_id)
    running = _job(store, "h2", "RUNNING", parent=parent_id)
    assert close_in_flight(store, parent_id, "KILLED", "sweep interrupted (Ctrl-C)") == [running]
    summary = finish_sweep(store, parent_id, status="KILLED", reason="sweep interrupted (Ctrl-C)")
    runs = {r.info.run_id: r for r in store.search()}
    assert runs[done].info.status == "FINISHED"
    assert runs[running].info.status == "KILLED"
    assert runs[running].data.tags["reason"] == "sweep interrupted (Ctrl-C)"
    assert runs[parent_id].info.status == "KILLED"
    assert runs[parent_id].data.tags["outcome"] == "killed"
    assert runs[parent_id].data.tags["reason"] == "sweep interrupted (Ctrl-C)"
    assert [row["status"] for row in summary.failed] == ["killed"]

    again, resumed = open_parent(store, "s", "next", {})  # the next launch reopens it clean
    reopened = store.client.get_run(again)
    assert resumed and reopened.info.status == "RUNNING"
    assert "reason" not in reopened.data.tags and reopened.data.tags[TAG_INVOCATION] == "next"


def test_a_launcher_that_fails_to_start_closes_the_parent(root: Path, capsys) -> None:
    arguments = [
        "run", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0", "seed=1,2",
        f"paths.root_dir={root}", "mlflow.experiment=launcher",
    ]  # fmt: skip
    assert cli.main(arguments) == 2
    err = capsys.readouterr().err
    assert "error: launcher JoblibLauncher failed: ValueError: n_jobs == 0" in err
    assert "check hydra/launcher and the hydra.launcher.* overrides" in err
    assert "Traceback" not in err
    store = open_store(f"sqlite:///{root}/mlflow.db", "launcher")
    (parent,) = store.search()  # the parent only: no job started
    assert parent.data.tags["role"] == "sweep" and parent.info.status == "FAILED"
    assert parent.data.tags["reason"].startswith("launcher JoblibLauncher failed: ValueError")


@pytest.mark.slow
def test_a_repeated_sweep_lists_every_configuration_with_its_latest_run(root, capsys) -> None:
    base = ["debug=tiny", "dataset.synthetic.rows=3000", f"paths.root_dir={root}"]
    base.append("mlflow.experiment=repeat")
    assert cli.main(["run", *base]) == 0  # the configuration FINISHED outside any sweep
    store = open_store(f"sqlite:///{root}/mlflow.db", "repeat")
    (single,) = store.search()
    capsys.readouterr()

    assert cli.main(["run", "-m", *base, "seed=1"]) == 0  # a 1-job sweep of it: reused
    out = capsys.readouterr().out
    assert "(no runs)" not in out
    assert f"| deepfefm none synthetic seed=1 | finished | {_auc(single)} |" in out
    (parent,) = store.search("tags.role = 'sweep'")
    assert parent.info.status == "FINISHED" and parent.data.metrics["runs_total"] == 1
    assert len(store.search("tags.role = 'job'")) == 1  # nothing ran twice


def _auc(run) -> str:
    return f"{run.data.metrics['test_auc']:.5f}"


def test_jobs_whose_data_is_bad_fail_the_sweep_with_file_and_line(root, capsys) -> None:
    good = "\t".join(["1", *["3"] * 13, *["0a1b2c3d"] * 26])
    paths = []
    for name in ("first.txt", "second.txt"):
        lines = [good] * 3 + ["\t".join(good.split("\t")[:39])]  # line 4 has 39 columns
        (root / name).write_text("\n".join(lines) + "\n")
        paths.append(str(root / name))
    arguments = [
        "run", "-m", "dataset=criteo", f"dataset.path={','.join(paths)}", "debug=tiny",
        f"paths.root_dir={root}", "mlflow.experiment=bad_data",
    ]  # fmt: skip
    assert cli.main(arguments) == 1
    err = capsys.readouterr().err
    assert "2 run(s) failed:" in err
    for path in paths:
        assert f"{path}, line 4: expected 40 columns, found 39" in err
    store = open_store(f"sqlite:///{root}/mlflow.db", "bad_data")
    (parent,) = store.search("tags.role = 'sweep'")
    assert parent.info.status == "FAILED" and parent.data.metrics["runs_failed"] == 2


def test_a_second_launch_of_a_live_sweep_is_refused_a_dead_one_reaped(store) -> None:
    live_id, _ = open_parent(store, "busy", "token", liveness_tags())  # this process: alive
    with pytest.raises(ConfigError, match=f"sweep 'busy' is running now \\(parent run {live_id}"):
        refuse_if_running(store, "busy")
    assert store.client.get_run(live_id).info.status == "RUNNING"

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    gone = {**liveness_tags(), TAG_PID: dead.stdout.strip(), TAG_PID_START: "1"}
    dead_id, _ = open_parent(store, "crashed", "token2", gone)
    refuse_if_running(store, "crashed")  # reaped, so the new launch may resume it
    reaped = store.client.get_run(dead_id)
    assert reaped.info.status == "KILLED"
    assert reaped.data.tags["reason"].startswith(f"reaped: process {dead.stdout.strip()} on host")


def test_the_launch_keeps_its_parents_heartbeat_fresh(store) -> None:
    parent_id, _ = open_parent(store, "beating", "token", {TAG_HEARTBEAT: "0"})
    with parent_heartbeat(store, "token", every_s=0.05):
        deadline = time.monotonic() + 30
        while store.client.get_run(parent_id).data.tags[TAG_HEARTBEAT] == "0":
            assert time.monotonic() < deadline, "no heartbeat within 30 s"
            time.sleep(0.05)
    assert float(store.client.get_run(parent_id).data.tags[TAG_HEARTBEAT]) > time.time() - 60


def test_a_job_without_its_parent_run_raises_for_the_launcher(root) -> None:
    cfg = cli.compose_config(
        [f"paths.root_dir={root}", "mlflow.experiment=orphan", "sweep.invocation=nope"]
    )
    with pytest.raises(SweepJobError, match="no parent run of sweep invocation 'nope' in sqlite"):
        run_sweep_job(cfg)
    assert open_store(f"sqlite:///{root}/mlflow.db", "orphan").search() == []  # no run made
