"""An Optuna study in RDB storage that several launches share and that survives being killed.

Storage: beside a local SQLite tracking store (`optuna.db` next to `mlflow.db`); with a tracking
server, the PostgreSQL database of `fefm-lab server` (`server.backend_store_uri`), in a schema
of its own (`optuna`: Optuna and MLflow both keep an `alembic_version` table); or the URL given.

Trials are claimed by the launching process that asked for them: its host, pid and a heartbeat
are the trial's user attributes. A RUNNING trial whose launcher is gone (dead pid on this host,
no heartbeat for `HEARTBEAT_TIMEOUT_S` from another) is *abandoned*: marked FAIL and its
parameters asked again (enqueued), so the job reruns the same configuration and continues from
its checkpoint. The budget counts finished, pruned, running and failed trials, never abandoned
ones: `n_trials` is the number of trials that end, however often the study is restarted or
however many launches feed it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from fefm_lab.errors import ConfigError
from fefm_lab.tracking.liveness import (
    HEARTBEAT_TIMEOUT_S,
    host_name,
    pid_alive,
    process_start_ticks,
)
from fefm_lab.tracking.store import sqlite_path
from fefm_lab.uris import masked_uri

# Trial user attributes (also what `fefm-lab` shows of a trial).
ATTR_HOST, ATTR_PID, ATTR_PID_START, ATTR_HEARTBEAT = "host", "pid", "pid_start", "heartbeat"
ATTR_ABANDONED = "abandoned"  # why a RUNNING trial was given up (its launcher is gone)
ATTR_OVER_BUDGET = "over_budget"  # asked by a launch that lost the race for the last places
ATTR_DUPLICATE = "duplicate"  # asked with the parameters of a trial another launch is running
ATTR_RETRY_OF = "retry_of"  # the abandoned trial's number whose parameters this one reruns
# Study user attributes: what the jobs read to report and prune.
ATTR_OBJECTIVE, ATTR_PRUNER = "objective", "pruner"
OPTUNA_SCHEMA = "optuna"  # PostgreSQL schema of the study tables
OBJECTIVES = {"val_logloss": "minimize", "val_auc": "maximize"}
CREATE_ATTEMPTS = 5  # tries to open a storage whose tables another process is creating


def default_storage(tracking_uri: str, server_database: str | None) -> str:
    """The study's storage when none is named (see the module docstring)."""
    database = sqlite_path(tracking_uri)
    if database is not None:
        return f"sqlite:///{database.parent.resolve() / 'optuna.db'}"
    if server_database:
        scheme = urlparse(server_database).scheme.split("+")[0]
        if scheme == "postgresql":
            return with_schema(server_database)
        if scheme == "sqlite":
            return default_storage(server_database, None)
    raise ConfigError(
        f"mlflow.tracking_uri={tracking_uri}: name the study's database with "
        "hydra.sweeper.storage=postgresql://... (or give server.backend_store_uri, the database "
        "of `fefm-lab server`)"
    )


def with_schema(url: str, schema: str = OPTUNA_SCHEMA) -> str:
    """A PostgreSQL URL whose connections use `schema` (libpq's options: search_path)."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{schema}"


def open_storage(url: str) -> RDBStorage:
    """Optuna's RDB storage at `url` (its PostgreSQL schema created first when one is named)."""
    if url.startswith("postgresql") and "search_path" in url:
        import sqlalchemy

        schema = url.rsplit("search_path%3D", 1)[1].split("&")[0]
        engine = sqlalchemy.create_engine(url.split("?")[0])
        try:
            with engine.begin() as connection:
                connection.execute(sqlalchemy.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        finally:
            engine.dispose()
    import sqlalchemy.exc

    for attempt in range(1, CREATE_ATTEMPTS):
        try:
            return RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            # two launches (or a launch and its jobs) creating the tables at the same moment:
            # the loser finds them made on a later try
            time.sleep(0.5 * attempt)
    return RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


def open_study(
    storage: RDBStorage,
    name: str,
    *,
    objective: str,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: Mapping[str, Any] | None = None,
) -> optuna.Study:
    """Create the study, or load it when it exists (its objective must then be the same)."""
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=OBJECTIVES[objective],
        sampler=sampler,
        load_if_exists=True,
    )
    previous = study.user_attrs.get(ATTR_OBJECTIVE)
    if previous is not None and previous != objective:
        raise ConfigError(
            f"hydra.sweeper.objective={objective}: study {name!r} in {masked_uri(storage.url)} "
            f"tunes {previous}; give another hydra.sweeper.study_name"
        )
    study.set_user_attr(ATTR_OBJECTIVE, objective)
    study.set_user_attr(ATTR_PRUNER, dict(pruner) if pruner else None)
    return study


def make_pruner(spec: Mapping[str, Any] | None) -> optuna.pruners.BasePruner:
    """The pruner a study's `pruner` attribute describes (None: never prune)."""
    if not spec or spec.get("name") in (None, "none"):
        return optuna.pruners.NopPruner()
    name = spec["name"]
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=int(spec.get("startup_trials", 3)),
            n_warmup_steps=int(spec.get("warmup_epochs", 1)),
        )
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=int(spec.get("min_epochs", 1)),
            reduction_factor=int(spec.get("reduction_factor", 3)),
        )
    raise ConfigError(
        f"hydra.sweeper.pruner.name={name}: expected null, median or successive_halving"
    )


# ---------------------------------------------------------------- claims and the budget


def trial_id(storage: RDBStorage, study: optuna.Study, number: int) -> int:
    """The storage's id of the study's trial `number`."""
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def claim(storage: RDBStorage, trial_id: int) -> None:
    """Mark the trial as this process's (host, pid) with a first heartbeat."""
    storage.set_trial_user_attr(trial_id, ATTR_HOST, host_name())
    storage.set_trial_user_attr(trial_id, ATTR_PID, os.getpid())
    storage.set_trial_user_attr(trial_id, ATTR_PID_START, process_start_ticks(os.getpid()))
    beat(storage, trial_id)


def beat(storage: RDBStorage, trial_id: int) -> None:
    storage.set_trial_user_attr(trial_id, ATTR_HEARTBEAT, time.time())


def abandoned_reason(trial: FrozenTrial, now: float | None = None) -> str | None:
    """Why a RUNNING trial's launcher is gone, or None while it is (or may be) alive."""
    attrs = trial.user_attrs
    host, pid = attrs.get(ATTR_HOST), attrs.get(ATTR_PID)
    if host == host_name() and isinstance(pid, int):
        if pid_alive(pid, attrs.get(ATTR_PID_START)):
            return None
        return f"its launching process {pid} on {host} is gone"
    last = attrs.get(ATTR_HEARTBEAT)
    if last is None and trial.datetime_start is not None:
        last = trial.datetime_start.timestamp()
    now = time.time() if now is None else now
    if last is not None and now - float(last) > HEARTBEAT_TIMEOUT_S:
        return f"no heartbeat from its launcher on {host or '?'} for {now - float(last):.0f} s"
    return None


def reap_abandoned(study: optuna.Study, storage: RDBStorage) -> list[tuple[int, str]]:
    """Mark FAIL the RUNNING trials whose launcher is gone and ask their parameters again;
    (trial number, reason) of each."""
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = abandoned_reason(trial)
        if reason is None:
            continue
        storage.set_trial_user_attr(trial_id(storage, study, trial.number), ATTR_ABANDONED, reason)
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError, optuna.exceptions.OptunaError):
            continue  # another launch reaped it first: it also asks it again
        study.enqueue_trial(trial.params, user_attrs={ATTR_RETRY_OF: trial.number})
        reaped.append((trial.number, reason))
    return reaped


def counted(study: optuna.Study) -> list[FrozenTrial]:
    """The trials the budget counts, by number: all but waiting, abandoned and over-budget."""
    kept = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.WAITING:
            continue
        if any(a in trial.user_attrs for a in (ATTR_ABANDONED, ATTR_OVER_BUDGET, ATTR_DUPLICATE)):
            continue
        kept.append(trial)
    return sorted(kept, key=lambda t: t.number)


def remaining(study: optuna.Study, n_trials: int) -> int:
    """Trials still to ask for this study's budget."""
    return max(0, n_trials - len(counted(study)))


def running_elsewhere(
    study: optuna.Study, storage: RDBStorage, number: int, params: Mapping[str, Any]
) -> bool:
    """Whether another RUNNING trial has exactly these parameters (two launches whose seeded
    samplers proposed the same point); if so the trial is marked duplicate and FAIL."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.number != number and trial.params == dict(params):
            storage.set_trial_user_attr(trial_id(storage, study, number), ATTR_DUPLICATE, True)
            study.tell(number, state=TrialState.FAIL)
            return True
    return False


def within_budget(study: optuna.Study, storage: RDBStorage, number: int, n_trials: int) -> bool:
    """Whether a just-asked trial is among the first `n_trials` counted; if not (another launch
    asked at the same moment) it is marked over budget and FAIL."""
    order = [t.number for t in counted(study)]
    if number in order and order.index(number) < n_trials:
        return True
    storage.set_trial_user_attr(trial_id(storage, study, number), ATTR_OVER_BUDGET, True)
    study.tell(number, state=TrialState.FAIL)
    return False
