"""The shared study: where it is stored, who owns a running trial, the budget across launches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from fefm_lab.errors import ConfigError
from fefm_lab.tuning import study as studies


def test_the_study_is_stored_beside_a_sqlite_tracking_store(tmp_path: Path, monkeypatch) -> None:
    url = studies.default_storage(f"sqlite:///{tmp_path}/mlflow.db", None)
    assert url == f"sqlite:///{tmp_path.resolve()}/optuna.db"
    monkeypatch.chdir(tmp_path)  # the default tracking URI is relative: sqlite:///./mlflow.db
    assert studies.default_storage("sqlite:///./mlflow.db", None) == url


def test_with_a_tracking_server_the_study_uses_the_servers_postgresql_in_its_own_schema() -> None:
    url = studies.default_storage(
        "http://127.0.0.1:5000", "postgresql://mlflow:secret@db:5432/mlflow"
    )
    assert url == "postgresql://mlflow:secret@db:5432/mlflow?options=-csearch_path%3Doptuna"


def test_a_tracking_server_without_a_named_database_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"name the study's database with hydra.sweeper.storage"):
        studies.default_storage("http://127.0.0.1:5000", None)


def _study(tmp_path: Path, name: str = "s") -> tuple[optuna.Study, optuna.storages.RDBStorage]:
    storage = studies.open_storage(f"sqlite:///{tmp_path}/optuna.db")
    return studies.open_study(storage, name, objective="val_logloss"), storage


def test_a_trial_whose_launcher_died_is_failed_and_asked_again(tmp_path: Path) -> None:
    study, storage = _study(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial_id = studies.trial_id(storage, study, trial.number)
    studies.claim(storage, trial_id)
    storage.set_trial_user_attr(trial_id, studies.ATTR_PID, dead.pid)
    storage.set_trial_user_attr(trial_id, studies.ATTR_PID_START, None)
    alive = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    studies.claim(storage, studies.trial_id(storage, study, alive.number))  # this process

    reaped = studies.reap_abandoned(study, storage)
    assert reaped == [(0, f"its launching process {dead.pid} on {studies.host_name()} is gone")]
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert trials[2].user_attrs[studies.ATTR_RETRY_OF] == 0
    assert studies.remaining(study, 3) == 2  # the abandoned one is not counted, the retry waits
    retry = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    assert retry.number == 2 and retry.params == trials[0].params


def test_a_trial_of_another_host_is_abandoned_only_after_its_heartbeat_stops(tmp_path) -> None:
    study, storage = _study(tmp_path)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial_id = studies.trial_id(storage, study, trial.number)
    storage.set_trial_user_attr(trial_id, studies.ATTR_HOST, "elsewhere")
    storage.set_trial_user_attr(trial_id, studies.ATTR_HEARTBEAT, 1000.0)
    (frozen,) = study.get_trials()
    now = 1000.0 + studies.HEARTBEAT_TIMEOUT_S
    assert studies.abandoned_reason(frozen, now=now) is None
    assert studies.abandoned_reason(frozen, now=now + 1) == (
        f"no heartbeat from its launcher on elsewhere for {now + 1 - 1000:.0f} s"
    )


# One launch's loop, as the sweeper runs it, with a made-up objective; prints what it told.
FEED = """
import sys, optuna
from fefm_lab.tuning import study as studies
url, name, n_trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
storage = studies.open_storage(url)
study = studies.open_study(storage, name, objective="val_logloss")
space = {"x": optuna.distributions.FloatDistribution(0, 1)}
while studies.remaining(study, n_trials) > 0:
    trial = study.ask(space)
    studies.claim(storage, studies.trial_id(storage, study, trial.number))
    if studies.within_budget(study, storage, trial.number, n_trials):
        study.tell(trial, (trial.params["x"] - 0.3) ** 2)
        print(trial.number, flush=True)
"""


def test_two_processes_feeding_one_sqlite_study_end_with_exactly_its_budget(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    _study(tmp_path, "shared")  # created once, as the sweeper's first launch does
    command = [sys.executable, "-c", FEED, url, "shared", "20"]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=180)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    told = [int(n) for output in outputs for n in output.split()]
    assert all(output.split() for output in outputs)  # both fed the study
    study = optuna.load_study(study_name="shared", storage=url)
    complete = [t.number for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(told) and len(set(told)) == 20  # none lost, none twice
    extra = [t for t in study.get_trials() if t.state != TrialState.COMPLETE]
    assert all(t.user_attrs.get(studies.ATTR_OVER_BUDGET) for t in extra)


def test_a_point_another_launch_is_running_is_dropped_and_not_counted(tmp_path) -> None:
    study, storage = _study(tmp_path)
    space = {"x": optuna.distributions.CategoricalDistribution([1, 2])}
    study.enqueue_trial({"x": 1})
    study.enqueue_trial({"x": 1})  # what a second launch with the same seeded sampler proposes
    first = study.ask(space)
    assert not studies.running_elsewhere(study, storage, first.number, first.params)
    second = study.ask(space)
    assert studies.running_elsewhere(study, storage, second.number, second.params)
    dropped = study.get_trials()[second.number]
    assert dropped.state == TrialState.FAIL and dropped.user_attrs[studies.ATTR_DUPLICATE]
    assert [t.number for t in studies.counted(study)] == [first.number]
    assert studies.remaining(study, 2) == 1
