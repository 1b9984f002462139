"""`hydra/sweeper=optuna` end to end on the tiny preset: what it finds, pruning, restarts, sharing.

Each trial is a real training run (3000 generated rows, a k=4 FM, 2 x 16 steps) recorded in
MLflow; the study is Optuna's SQLite storage beside the tracking database.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from fefm_lab import cli
from fefm_lab.tracking.store import open_store
from fefm_lab.tuning.study import ATTR_ABANDONED, ATTR_RETRY_OF

pytestmark = pytest.mark.slow


def _study(root: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{root}/optuna.db")


def _ended(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def _runs_by_trial(root: Path, experiment: str) -> dict[int, list]:
    store = open_store(f"sqlite:///{root}/mlflow.db", experiment)
    runs: dict[int, list] = {}
    for run in store.search("tags.role = 'job'"):
        if "optuna_trial" in run.data.tags:
            runs.setdefault(int(run.data.tags["optuna_trial"]), []).append(run)
    return runs


def test_within_12_trials_the_rate_is_within_1pc_of_a_fine_grids_best(tmp_path, capsys) -> None:
    base = ["experiment=tune_tiny", f"paths.root_dir={tmp_path}"]
    assert cli.main(["run", "-m", *base]) == 0
    err = capsys.readouterr().err
    study = _study(tmp_path, "tune_tiny")
    assert len(_ended(study)) == 12 and len(study.get_trials()) == 12
    assert f"best trial {study.best_trial.number}, val_logloss {study.best_value:.6f}" in err

    # the parent holds the best trial's overrides and value, and the plots
    store = open_store(f"sqlite:///{tmp_path}/mlflow.db", "tune_tiny")
    (parent,) = store.search("tags.role = 'sweep'")
    rate = study.best_params["trainer.learning_rate"]
    assert parent.data.tags["best_overrides"] == f"trainer.learning_rate={rate!r}"
    assert parent.data.tags["best_trial"] == str(study.best_trial.number)
    assert parent.data.metrics["best_val_logloss"] == pytest.approx(study.best_value, rel=1e-12)
    plots = {f.path for f in store.client.list_artifacts(parent.info.run_id, "tuning")}
    assert plots == {"tuning/optimization_history.png", "tuning/parallel_coordinate.png"}
    # every trial one child run of that parent, with its state and the value the study got
    runs = _runs_by_trial(tmp_path, "tune_tiny")
    assert sorted(runs) == list(range(12)) and all(len(r) == 1 for r in runs.values())
    for trial in study.get_trials():
        (run,) = runs[trial.number]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["optuna_state"] == "COMPLETE"
        assert (
            float(run.data.params["trainer.learning_rate"]) == trial.params["trainer.learning_rate"]
        )
        assert run.data.metrics["best_val_logloss"] == pytest.approx(trial.value, rel=1e-12)

    # a fine grid of the same runs: 16 rates, log-spaced over the searched interval
    grid = [0.005 * 60 ** (i / 15) for i in range(16)]
    for rate in grid:
        assert cli.main(["run", *base, f"trainer.learning_rate={rate!r}"]) == 0
    singles = store.search("tags.role = 'job' and tags.sweep = 'none'")
    values = [run.data.metrics["best_val_logloss"] for run in singles]
    assert len(values) == 16 and all(math.isfinite(v) for v in values)
    assert study.best_value <= min(values) * 1.01


def test_pruned_trials_are_recorded_pruned_with_their_epoch(tmp_path) -> None:
    arguments = [
        "run", "-m", "experiment=tune_tiny", f"paths.root_dir={tmp_path}",
        "hydra.sweeper.n_trials=6", "hydra.sweeper.sampler=random", "hydra.sweeper.seed=3",
        "hydra.sweeper.pruner.name=median", "hydra.sweeper.pruner.startup_trials=1",
        "hydra.sweeper.pruner.warmup_epochs=0",
    ]  # fmt: skip
    assert cli.main(arguments) == 0
    study = _study(tmp_path, "tune_tiny")
    pruned = [t for t in study.get_trials() if t.state == TrialState.PRUNED]
    assert pruned and len(_ended(study)) == 6
    runs = _runs_by_trial(tmp_path, "tune_tiny")
    for trial in pruned:
        (run,) = runs[trial.number]
        assert run.info.status == "FINISHED"  # stopped by its study, not a failure
        assert run.data.tags["outcome"] == "pruned" and run.data.tags["optuna_state"] == "PRUNED"
        assert run.data.tags["pruned_at_epoch"] == "1"
        assert run.data.tags["reason"] == "pruned by the tuning study after epoch 1"
        history = open_store(f"sqlite:///{tmp_path}/mlflow.db", "tune_tiny").client
        steps = [m.step for m in history.get_metric_history(run.info.run_id, "val_logloss")]
        assert steps == [1]  # one epoch of the two, then it stopped
        assert trial.intermediate_values == {1: pytest.approx(run.data.metrics["val_logloss"])}
    for trial in study.get_trials():
        if trial.state == TrialState.COMPLETE:
            assert runs[trial.number][0].data.tags["outcome"] == "finished"


def _command(root: Path, *extra: str) -> list[str]:
    fefm_lab = Path(sys.executable).with_name("fefm-lab")
    return [
        str(fefm_lab), "run", "-m", "experiment=tune_tiny", f"paths.root_dir={root}",
        "hydra.sweeper.n_trials=5", *extra,
    ]  # fmt: skip


def _prepare(root: Path) -> None:
    """The data and the tracking database made once, before processes race for them."""
    assert cli.main(["prepare", "experiment=tune_tiny", f"paths.root_dir={root}"]) == 0
    open_store(f"sqlite:///{root}/mlflow.db", "tune_tiny")


def test_a_killed_study_rerun_ends_with_exactly_n_trials(tmp_path) -> None:
    _prepare(tmp_path)
    first = subprocess.Popen(
        _command(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:  # the launch may be creating the study right now
                trials = _study(tmp_path, "tune_tiny").get_trials()
            except Exception:
                continue
            if len(_ended_of(trials)) >= 2 and trials[-1].state == TrialState.RUNNING:
                break
        else:
            pytest.fail("the first launch never got two trials done")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    before = _study(tmp_path, "tune_tiny").get_trials()
    running = [t.number for t in before if t.state == TrialState.RUNNING]
    assert running  # killed mid-trial

    rerun = subprocess.run(_command(tmp_path), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    study = _study(tmp_path, "tune_tiny")
    assert len(_ended(study)) == 5
    for number in running:
        assert f"trial {number} of study 'tune_tiny' abandoned" in rerun.stderr
        abandoned = study.get_trials()[number]
        assert abandoned.state == TrialState.FAIL and ATTR_ABANDONED in abandoned.user_attrs
        (retry,) = [t for t in study.get_trials() if t.user_attrs.get(ATTR_RETRY_OF) == number]
        assert retry.params == abandoned.params and retry.state == TrialState.COMPLETE
    # the finished trials before the kill were kept, not rerun
    kept = [t.number for t in before if t.state == TrialState.COMPLETE]
    assert all(study.get_trials()[n].state == TrialState.COMPLETE for n in kept)


def _ended_of(trials) -> list:
    return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def test_two_launches_sharing_one_sqlite_study_neither_lose_nor_duplicate(tmp_path) -> None:
    _prepare(tmp_path)
    launches = [
        subprocess.Popen(
            _command(tmp_path, f"sweep.name=launch_{n}", "hydra.sweeper.study_name=shared"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    errors = [launch.communicate(timeout=600)[1] for launch in launches]
    assert [launch.returncode for launch in launches] == [0, 0], errors
    study = _study(tmp_path, "shared")
    ended = _ended(study)
    assert len(ended) == 5
    runs = _runs_by_trial(tmp_path, "tune_tiny")
    # each ended trial has exactly one run; no run belongs to a trial outside the budget
    assert sorted(runs) == sorted(t.number for t in ended)
    assert all(len(r) == 1 for r in runs.values())
    store = open_store(f"sqlite:///{tmp_path}/mlflow.db", "tune_tiny")
    parents = {p.info.run_id for p in store.search("tags.role = 'sweep'")}
    assert len(parents) == 2
    assert {r[0].data.tags["mlflow.parentRunId"] for r in runs.values()} <= parents
