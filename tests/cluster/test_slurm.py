"""Sweeps through a real one-node Slurm (munged, slurmctld, slurmd on 127.0.0.1 in the tests'
network namespace) into `fefm-lab server` on PostgreSQL (slow).

`hydra/launcher=submitit_slurm` submits the jobs itself; the tests act as the scheduler and the
user do: a time limit that ends mid-run, `scontrol requeue`, `scancel`, and SIGTERM to the
launching process. Tiny synthetic data, one thread per job (two runs of one configuration give
the same numbers), the node's 2 CPUs running 2 jobs at once.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import cluster_services as services
import pytest
from sweep_checks import (
    CONFIGS,
    SWEEP,
    TINY,
    by_config,
    explain,
    fefm_lab,
    finished_sweep,
    job_runs,
    report_rows,
)

from fefm_lab.cluster.checks import check_launch
from fefm_lab.cluster.launchers import launcher_placement
from fefm_lab.cluster.slurm import slurm_hosts
from fefm_lab.config.compose import resolved_config
from fefm_lab.tracking.store import open_store

pytestmark = pytest.mark.slow

SLURM = ["hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=1"]
# Long enough that a job is still training when the test (or the time limit) interrupts it:
# 12 epochs of 60 steps, early stopping off.
LONG = [
    "debug=tiny", "dataset.synthetic.rows=20000", "trainer.steps_per_epoch=60",
    "trainer.max_epochs=12", "trainer.early_stopping.patience=100", "threads=1",
]  # fmt: skip
METRICS = ("test_auc", "test_logloss", "best_val_auc", "best_val_logloss", "best_epoch")


def _tracking(server, experiment: str, root: Path) -> list[str]:
    return [
        f"mlflow.tracking_uri={server.uri}", f"mlflow.experiment={experiment}",
        f"paths.root_dir={root}",
    ]  # fmt: skip


def _start(command: list[str], root: Path, env: dict[str, str]) -> subprocess.Popen:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "sweep.log").open("w") as output:
        return subprocess.Popen(
            [str(services.VENV_BIN / "fefm-lab"), *command], cwd=root, env=env,
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _running_jobs(store, slurm, count: int):
    """`count` job runs RUNNING with their Slurm jobs RUNNING (training: the runs are open)."""

    def check():
        running = [r for r in job_runs(store) if r.info.status == "RUNNING"]
        states = slurm.jobs()
        busy = [j for j, s in states.items() if s == "RUNNING"]
        return (running, busy) if len(running) >= count and len(busy) >= count else None

    return services.wait_until(check, 300, f"{count} job(s) training on Slurm")


def _slurm_job_of(run) -> str:
    """The Slurm job that runs `run` (its liveness tag, as squeue and scancel name it)."""
    return run.data.tags["slurm_job"]


def _reference(root: Path, experiment: str, *overrides: str) -> dict:
    """The same configurations run uninterrupted by the basic launcher into SQLite."""
    result = fefm_lab(
        "run", "-m", *overrides, f"mlflow.experiment={experiment}", f"paths.root_dir={root}",
        cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, explain(result)
    return by_config(job_runs(open_store(f"sqlite:///{root}/mlflow.db", experiment)))


def test_a_one_node_slurm_is_a_loopback_cluster(slurm, tmp_path) -> None:
    assert slurm_hosts() == ("127.0.0.1",)  # SlurmctldHost=localhost(127.0.0.1), NodeAddr
    placement = launcher_placement(
        {"_target_": "hydra_plugins.fefm_lab_launchers.slurm_launcher.SlurmLauncher"}
    )
    assert placement.other_machines and placement.loopback_cluster
    uri = "http://127.0.0.1:5000"
    check_launch(
        resolved_config([f"paths.root_dir={tmp_path}", f"mlflow.tracking_uri={uri}"]), placement
    )


def test_slurm_sweep_into_the_server_matches_basic(slurm, tracking_server, cluster_root) -> None:
    root = cluster_root / "slurm_sweep"
    experiment = "slurm_sweep"
    result = fefm_lab(
        "run", "-m", *SWEEP, *TINY, *SLURM, "hydra.launcher.timeout_min=10",
        *_tracking(tracking_server, experiment, root / "slurm"), cwd=root / "slurm",
    )  # fmt: skip
    assert result.returncode == 0, explain(result)
    assert "submitted 4 Slurm job(s)" in result.stderr
    _, parent, on_slurm = finished_sweep(tracking_server.uri, experiment)
    assert parent.data.metrics["runs_finished"] == 4
    assert slurm.jobs() == {}  # none left pending or running

    basic = root / "basic"
    on_basic = _reference(basic, experiment, *SWEEP, *TINY)
    for key in CONFIGS:
        for metric in ("test_auc", "test_logloss"):
            assert on_slurm[key].data.metrics[metric] == on_basic[key].data.metrics[metric]
    slurm_table, rows = report_rows(tracking_server.uri, experiment, root / "report_slurm")
    basic_table, _ = report_rows(f"sqlite:///{basic}/mlflow.db", experiment, root / "report_basic")
    assert slurm_table == basic_table
    assert {name: row["runs"] for name, row in rows.items()} == {"none": "2", "no_linear": "2"}


def test_a_time_limit_and_scontrol_requeue_resume_the_same_run_exactly(
    slurm, tracking_server, cluster_root
) -> None:
    """seed=1 runs into its 1-minute time limit (SIGUSR2 50 s before it), seed=2 is requeued by
    `scontrol requeue` while training; both continue their run and end as uninterrupted runs."""
    root = cluster_root / "requeue"
    experiment = "requeue"
    sweep = ["seed=1,2", *LONG]
    command = [
        "run", "-m", *sweep, *SLURM, "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=50", "hydra.launcher.max_num_timeout=6",
        *_tracking(tracking_server, experiment, root),
    ]  # fmt: skip
    sweep_process = _start(command, root, slurm.env)
    try:
        store = open_store(tracking_server.uri, experiment)
        running, _ = _running_jobs(store, slurm, 2)
        (second,) = [r for r in running if r.data.tags["seed"] == "2"]
        slurm.command("scontrol", "requeue", _slurm_job_of(second))
        code = sweep_process.wait(timeout=900)
    finally:
        if sweep_process.poll() is None:
            services.end_session(sweep_process)
    log = (root / "sweep.log").read_text()
    assert code == 0, log[-6000:]

    runs = job_runs(store)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}, log[-6000:]
    on_slurm = {r.data.tags["seed"]: r for r in runs}
    # each was continued in its own run from its checkpoint, at least once
    for seed in ("1", "2"):
        assert on_slurm[seed].data.tags["resumed"].split(" ")[0] != "0"
        assert "outcome" in on_slurm[seed].data.tags  # finished, no reason left from the kill
        assert "reason" not in on_slurm[seed].data.tags
    submitit_logs = "".join(p.read_text() for p in root.glob("outputs/multirun/*/.submitit/*/*"))
    assert "Caught signal SIGUSR2" in submitit_logs and "this job is timed-out" in submitit_logs
    reference = _reference(root / "basic", experiment, *sweep)
    for (_, seed), uninterrupted in reference.items():
        resumed = on_slurm[seed].data.metrics
        assert {m: resumed[m] for m in METRICS} == {
            m: uninterrupted.data.metrics[m] for m in METRICS
        }
    assert slurm.jobs() == {}


def test_scancel_kills_one_run_the_sweep_goes_on_and_a_rerun_finishes_it(
    slurm, tracking_server, cluster_root
) -> None:
    root = cluster_root / "scancel"
    experiment = "scancel"
    command = [
        "run", "-m", "seed=1,2", *LONG, *SLURM, "hydra.launcher.timeout_min=10",
        *_tracking(tracking_server, experiment, root),
    ]  # fmt: skip
    sweep_process = _start(command, root, slurm.env)
    try:
        store = open_store(tracking_server.uri, experiment)
        running, _ = _running_jobs(store, slurm, 2)
        (victim,) = [r for r in running if r.data.tags["seed"] == "1"]
        job_id = _slurm_job_of(victim)
        slurm.command("scancel", job_id)
        code = sweep_process.wait(timeout=600)
    finally:
        if sweep_process.poll() is None:
            services.end_session(sweep_process)
    log = (root / "sweep.log").read_text()
    assert code == 1, log[-6000:]
    runs = {r.data.tags["seed"]: r for r in job_runs(store)}
    assert runs["2"].info.status == "FINISHED", log[-6000:]  # the sweep went on
    killed = runs["1"]
    assert killed.info.status == "KILLED" and killed.data.tags["outcome"] == "killed"
    assert killed.data.tags["reason"].startswith("stopped by SIGTERM"), killed.data.tags
    (parent,) = store.search("tags.role = 'sweep'")
    assert parent.info.status == "FAILED"
    assert f"Slurm job {job_id} ended CANCELLED" in parent.data.tags["reason"]

    result = fefm_lab(*command, cwd=root)  # the same sweep again
    assert result.returncode == 0, explain(result)
    again = {r.data.tags["seed"]: r for r in job_runs(store)}
    assert set(again) == {"1", "2"} and len(job_runs(store)) == 2  # no new run
    assert again["1"].info.run_id == killed.info.run_id  # continued from its checkpoint
    assert again["1"].info.status == "FINISHED" and "resumed" in again["1"].data.tags
    assert again["2"].info.end_time == runs["2"].info.end_time  # not rerun
    assert "submitted 1 Slurm job(s)" in result.stderr


def test_sigterm_to_the_launcher_cancels_its_slurm_jobs(slurm, tracking_server, cluster_root):
    root = cluster_root / "launcher_stopped"
    experiment = "launcher_stopped"
    command = [
        "run", "-m", "seed=1,2", *LONG, *SLURM, "hydra.launcher.timeout_min=10",
        *_tracking(tracking_server, experiment, root),
    ]  # fmt: skip
    sweep_process = _start(command, root, slurm.env)
    try:
        store = open_store(tracking_server.uri, experiment)
        _, busy = _running_jobs(store, slurm, 2)
        sweep_process.send_signal(signal.SIGTERM)
        code = sweep_process.wait(timeout=180)
    finally:
        if sweep_process.poll() is None:
            services.end_session(sweep_process)
    log = (root / "sweep.log").read_text()
    assert code == 128 + signal.SIGTERM, log[-6000:]
    assert f"cancelling 2 Slurm job(s) of the stopped sweep: {' '.join(sorted(busy))}" in log
    services.wait_until(lambda: not slurm.job_processes(), 60, "the jobs' processes to end")
    assert slurm.jobs() == {}
    runs = job_runs(store)
    assert [r.info.status for r in runs] == ["KILLED", "KILLED"]
    (parent,) = store.search("tags.role = 'sweep'")
    assert parent.info.status == "KILLED"
    assert parent.data.tags["reason"] == "sweep stopped by SIGTERM"

    result = fefm_lab(*command, cwd=root)  # the same sweep again: both continue and finish
    assert result.returncode == 0, explain(result)
    again = job_runs(store)
    assert {r.info.run_id for r in again} == {r.info.run_id for r in runs}
    assert {r.info.status for r in again} == {"FINISHED"}
