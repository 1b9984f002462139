"""Sweeps through a real one-node Slurm (munged, slurmctld, slurmd on 127.0.0.1 in the tests'
network namespace) into `fefm-lab server` on PostgreSQL (slow).

`hydra/launcher=submitit_slurm` submits the jobs itself; the tests act as the scheduler and the
user do: a time limit that ends mid-run, `scontrol requeue`, `scancel`, and SIGTERM to the
launching process. Tiny synthetic data, one thread per job (two runs of one configuration give
the same numbers), the node's 2 CPUs running 2 jobs at once.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import cluster_services as services
import pytest
from sweep_checks import (
    CONFIGS,
    SWEEP,
    TINY,
    adaptive_study_like_basic,
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
    """`count` job runs training (RUNNING, with metrics logged) in RUNNING Slurm jobs."""

    def check():
        running = [r for r in job_runs(store) if r.info.status == "RUNNING" and r.data.metrics]
        states = slurm.jobs()
        busy = [j for j, s in states.items() if s == "RUNNING"]
        return (running, busy) if len(running) >= count and len(busy) >= count else None

    return services.wait_until(check, 300, f"{count} job(s) training on Slurm")


def _slurm_job_of(run) -> str:
    """The Slurm job that runs `run` (its liveness tag, as squeue and scancel name it)."""
    return run.data.tags["slurm_job"]


def _reference(root: Path, experiment: str, *overrides: str, timeout: int = 600) -> dict:
    """The same configurations run uninterrupted by the basic launcher into SQLite."""
    result = fefm_lab(
        "run", "-m", *overrides, f"mlflow.experiment={experiment}", f"paths.root_dir={root}",
        cwd=root, timeout=timeout,
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


def test_an_adaptive_seeds_study_on_slurm_takes_the_basic_launchers_looks(
    slurm, tracking_server, cluster_root
) -> None:
    """hydra/sweeper=adaptive_seeds hands each look's batch to the Slurm launcher: a job array
    per look (both points on seeds 1-2, then seed 3), with the basic launcher's outcome."""
    launcher = [*SLURM, "hydra.launcher.timeout_min=10"]
    result = adaptive_study_like_basic(
        launcher, tracking_server, cluster_root / "adaptive", "adaptive"
    )
    assert re.findall(r"submitted (\d+) Slurm job\(s\)", result.stderr) == ["4", "2"]
    assert slurm.jobs() == {}
