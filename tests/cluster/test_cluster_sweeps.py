"""Sweeps on a real local cluster into a real `fefm-lab server` on PostgreSQL (slow).

Everything runs inside a loopback-only network namespace (see cluster_services): PostgreSQL, the
MLflow tracking server, a Ray head plus a second node joining it by address, and the
`fefm-lab run -m` processes, on tiny synthetic data (3000 rows, 2 x 15 steps, one thread per job
so that two runs of one configuration give the same numbers).
"""

from __future__ import annotations

import os
import signal
import subprocess

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

from fefm_lab.tracking.store import open_store

pytestmark = pytest.mark.slow


def _ray(cluster) -> list[str]:
    return ["hydra/launcher=ray", f"hydra.launcher.ray.init.address={cluster.address}"]


def test_ray_sweep_into_the_server_matches_basic_into_sqlite(
    tracking_server, ray_cluster, cluster_root
) -> None:
    root = cluster_root / "ray_vs_basic"
    experiment = "ray_vs_basic"
    result = fefm_lab(
        "run", "-m", *SWEEP, *TINY, *_ray(ray_cluster),
        f"mlflow.tracking_uri={tracking_server.uri}", f"mlflow.experiment={experiment}",
        f"paths.root_dir={root}/ray", cwd=root / "ray",
    )  # fmt: skip
    assert result.returncode == 0, explain(result)
    store, _, on_ray = finished_sweep(tracking_server.uri, experiment)
    # artifacts went through the server to its destination, not to the jobs' disks
    artifacts = {a.path for a in store.client.list_artifacts(on_ray["none", "1"].info.run_id)}
    assert {"config.yaml", "model", "training_curve.png"} <= artifacts
    assert any((cluster_root / "server-artifacts").rglob("config.yaml"))
    assert not (root / "ray" / "mlartifacts").exists()

    result = fefm_lab(
        "run", "-m", *SWEEP, *TINY, f"mlflow.experiment={experiment}",
        f"paths.root_dir={root}/basic", cwd=root / "basic",
    )  # fmt: skip
    assert result.returncode == 0, explain(result)
    local = open_store(f"sqlite:///{root}/basic/mlflow.db", experiment)
    on_basic = by_config(job_runs(local))
    for key in CONFIGS:  # same seeds -> same numbers, wherever the job ran
        assert on_ray[key].data.metrics["test_auc"] == on_basic[key].data.metrics["test_auc"]
        assert (
            on_ray[key].data.metrics["test_logloss"] == (on_basic[key].data.metrics["test_logloss"])
        )
        assert on_ray[key].data.tags["config_hash"] == on_basic[key].data.tags["config_hash"]

    ray_table, ray_rows = report_rows(tracking_server.uri, experiment, root / "report_ray")
    basic_uri = f"sqlite:///{root}/basic/mlflow.db"
    basic_table, _ = report_rows(basic_uri, experiment, root / "report_basic")
    assert ray_table == basic_table
    assert {name: row["runs"] for name, row in ray_rows.items()} == {"none": "2", "no_linear": "2"}


def test_an_adaptive_seeds_study_on_ray_takes_the_basic_launchers_looks(
    tracking_server, ray_cluster, cluster_root
) -> None:
    """hydra/sweeper=adaptive_seeds hands each look's batch to the Ray launcher (tasks on the
    head and the second node), with the basic launcher's outcome."""
    adaptive_study_like_basic(
        _ray(ray_cluster), tracking_server, cluster_root / "adaptive_ray", "adaptive_ray"
    )


def test_a_killed_ray_worker_leaves_its_run_killed_and_a_rerun_repeats_only_it(
    tracking_server, ray_cluster, cluster_root
) -> None:
    root = cluster_root / "killed"
    root.mkdir()
    experiment = "killed_worker"
    # more steps: the job is still training when its worker is killed
    command = [
        str(services.VENV_BIN / "fefm-lab"), "run", "-m", *SWEEP, *TINY,
        "trainer.steps_per_epoch=40", *_ray(ray_cluster),
        f"mlflow.tracking_uri={tracking_server.uri}", f"mlflow.experiment={experiment}",
        f"paths.root_dir={root}",
    ]  # fmt: skip
    log = root / "sweep.log"
    with log.open("w") as output:
        sweep = subprocess.Popen(
            command, cwd=root, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        store = open_store(tracking_server.uri, experiment)

        def busy_workers() -> list[int]:
            running = [r for r in job_runs(store) if r.info.status == "RUNNING"]
            workers = ray_cluster.job_worker_pids()
            # every busy worker has opened its run: killing one ends a run mid-training
            return workers if running and len(running) == len(workers) else []

        victim = services.wait_until(busy_workers, 300, "a job training on a Ray worker")[0]
        os.kill(victim, signal.SIGKILL)
        code = sweep.wait(timeout=600)
    finally:
        if sweep.poll() is None:
            services.end_session(sweep)
    assert code != 0, log.read_text()[-4000:]

    runs = job_runs(store)
    statuses = sorted(r.info.status for r in runs)
    assert statuses == ["FINISHED", "FINISHED", "FINISHED", "KILLED"], log.read_text()[-4000:]
    (killed,) = [r for r in runs if r.info.status == "KILLED"]
    assert killed.data.tags["outcome"] == "killed"
    assert killed.data.tags["reason"].startswith("Ray worker died (")
    (parent,) = store.search("tags.role = 'sweep'")
    assert parent.info.status == "FAILED"  # the sweep ended, naming the lost job
    assert "Ray worker died" in parent.data.tags["reason"]

    before = {r.info.run_id for r in runs}
    result = fefm_lab(*command[1:], cwd=root)  # the same sweep again
    assert result.returncode == 0, explain(result)
    runs = job_runs(store)
    (rerun,) = [r for r in runs if r.info.run_id not in before]  # only the killed configuration
    assert rerun.data.tags["config_hash"] == killed.data.tags["config_hash"]
    assert rerun.info.status == "FINISHED"
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert set(by_config(finished)) == CONFIGS  # exactly one FINISHED run per configuration
    assert store.client.get_run(parent.info.run_id).info.status == "FINISHED"  # resumed, ended

    _, rows = report_rows(tracking_server.uri, experiment, root / "report")
    assert {name: row["runs"] for name, row in rows.items()} == {"none": "2", "no_linear": "2"}


def test_two_sweeps_started_at_once_into_one_server(tracking_server, cluster_root) -> None:
    root = cluster_root / "concurrent"
    experiment = "concurrent"
    sweeps = {"left": "seed=11,12", "right": "seed=13,14"}
    processes = {}
    for name, seeds in sweeps.items():
        (root / name).mkdir(parents=True)
        processes[name] = subprocess.Popen(
            [
                str(services.VENV_BIN / "fefm-lab"), "run", "-m", seeds, *TINY,
                f"sweep.name={name}", f"mlflow.tracking_uri={tracking_server.uri}",
                f"mlflow.experiment={experiment}", f"paths.root_dir={root}/{name}",
            ],
            cwd=root / name, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    for name, process in processes.items():
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, f"{name}:\n{output[-6000:]}"

    store = open_store(tracking_server.uri, experiment)
    parents = {p.data.tags["sweep"]: p for p in store.search("tags.role = 'sweep'")}
    assert set(parents) == {"left", "right"}
    children = {name: store.children(p.info.run_id) for name, p in parents.items()}
    assert sorted(c.data.tags["seed"] for c in children["left"]) == ["11", "12"]
    assert sorted(c.data.tags["seed"] for c in children["right"]) == ["13", "14"]
    jobs = job_runs(store)
    assert len(jobs) == 4 and {j.info.status for j in jobs} == {"FINISHED"}
    for name, runs in children.items():
        assert {r.data.tags["sweep"] for r in runs} == {name}
        assert all("test_auc" in r.data.metrics for r in runs)
    for parent in parents.values():
        parent = store.client.get_run(parent.info.run_id)
        assert parent.info.status == "FINISHED" and parent.data.metrics["runs_finished"] == 2


def test_submitit_local_runs_the_sweep_into_the_server(tracking_server, cluster_root) -> None:
    root = cluster_root / "submitit"
    experiment = "submitit_local"
    result = fefm_lab(
        "run", "-m", *SWEEP, *TINY, "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=15", f"mlflow.tracking_uri={tracking_server.uri}",
        f"mlflow.experiment={experiment}", f"paths.root_dir={root}", cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, explain(result)
    _, parent, _ = finished_sweep(tracking_server.uri, experiment)
    assert parent.data.metrics["runs_finished"] == 4
    # the jobs ran as submitit processes: their logs are in the sweep's .submitit folder
    assert len(list(root.glob("outputs/multirun/*/.submitit/*"))) >= 1


def test_a_ray_tuning_lands_every_trial_in_one_study_and_one_parent(
    tracking_server, postgres, ray_cluster, cluster_root
) -> None:
    import optuna
    from optuna.trial import TrialState

    from fefm_lab.tuning.study import with_schema

    root = cluster_root / "ray_tuning"
    database = postgres.uri("mlflow")  # the server's own database: the study goes beside it
    result = fefm_lab(
        "run", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2",
        "trainer.learning_rate=tag(log, interval(0.02, 0.2))", "sweep.name=ray_tuning",
        *TINY, *_ray(ray_cluster), f"mlflow.tracking_uri={tracking_server.uri}",
        "mlflow.experiment=ray_tuning", f"server.backend_store_uri={database}",
        f"paths.root_dir={root}", cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, explain(result)
    study = optuna.load_study(study_name="ray_tuning", storage=with_schema(database))
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    store = open_store(tracking_server.uri, "ray_tuning")
    (parent,) = store.search("tags.role = 'sweep'")
    children = store.children(parent.info.run_id)
    assert sorted(int(c.data.tags["optuna_trial"]) for c in children) == [0, 1, 2, 3]
    assert {c.info.status for c in children} == {"FINISHED"}
    for child in children:
        trial = trials[int(child.data.tags["optuna_trial"])]
        assert child.data.metrics["best_val_logloss"] == trial.value
        assert (
            float(child.data.params["trainer.learning_rate"])
            == (trial.params["trainer.learning_rate"])
        )
    best = study.best_params["trainer.learning_rate"]
    assert parent.data.tags["best_overrides"] == f"trainer.learning_rate={best!r}"
