"""The tracking store: experiment creation, run lookup by config hash, sweep parent runs.

Everything goes through `MlflowClient` with explicit run ids (never the fluent active-run
state), so jobs that share a worker process cannot leak runs into each other.

Opening a SQLite store is serialised across processes by an exclusive `fcntl` lock on
`<database>.lock` beside the database: MLflow creates and migrates the schema when a client
first connects, and processes doing that at once corrupt a fresh database ("table
_alembic_tmp_metrics already exists"). A tracking server migrates its own database, so server
URIs need no lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import SQLAlchemyError

from fefm_lab.errors import UserError
from fefm_lab.tracking.experiment import describe_experiment, get_or_create_experiment
from fefm_lab.tracking.liveness import HEARTBEAT_TIMEOUT_S, death_reason
from fefm_lab.tracking.outbox import (
    TrackingUnreachable,
    is_unreachable,
    quick_requests,
    why_unreachable,
)
from fefm_lab.uris import masked_text, masked_uri

# MLflow's HTTP retries when a start opens the store: a server that is down is one line in
# seconds, not MLflow's seven retries with backoff (minutes) and a traceback.
START_RETRIES = 2
# Tag names (plain words: they are what people filter on in the UI).
TAG_ROLE = "role"  # "job" | "sweep"
TAG_TRIAL = "optuna_trial"  # a tuning trial's number in its study (fefm_lab.tuning)
TAG_TUNED = "tuned_settings"  # a run of a study's chosen settings: those settings
TAG_OUTCOME = "outcome"  # "finished" | "skipped" | "failed" | "killed" | "pruned"
TAG_REASON = "reason"  # why a run failed or was skipped
TAG_CONFIG_HASH = "config_hash"
TAG_SWEEP = "sweep"
TAG_PARENT = "mlflow.parentRunId"
TAG_DATA_FINGERPRINT = "data_fingerprint"
TAG_CODE_VERSION = "code_version"
ROLE_JOB = "job"
ROLE_SWEEP = "sweep"
# The longest tag value fefm-lab writes (characters): reasons, notes, overrides are cut to it.
TAG_VALUE_LIMIT = 5000
# The MLflow status each outcome ends a run with.
OUTCOME_STATUS = {
    "finished": "FINISHED",
    "skipped": "FINISHED",
    "pruned": "FINISHED",
    "failed": "FAILED",
    "killed": "KILLED",
}
REUSED_PREFIX = "reused."  # parent tag `reused.<config hash>` = the FINISHED run a job reused


def tag_value(text: str) -> str:
    """`text` cut to TAG_VALUE_LIMIT characters (MLflow refuses longer tag values)."""
    return text[:TAG_VALUE_LIMIT]


def configuration_of(run: Run) -> str:
    """What a run is a run of: its config hash (its own id when it has none)."""
    return run.data.tags.get(TAG_CONFIG_HASH) or run.info.run_id


def latest_per_config(runs: Iterable[Run]) -> list[Run]:
    """THE rule for "the latest run of each configuration", used by resume, the sweep summary
    and the report: per config hash, the run that started last (ties: the later in `runs`),
    whatever its status. Filter on status afterwards, never before: a configuration whose latest
    run failed has no current result, even if an older run of it finished."""
    latest: dict[str, Run] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time or 0):
        latest[configuration_of(run)] = run
    return list(latest.values())


def _artifact_uri(location: str | None, tracking_uri: str) -> str | None:
    """Where a new experiment keeps artifacts. A tracking server (http[s]://) decides itself
    (its --artifacts-destination; jobs upload through it): a local path would leave each job's
    artifacts on the machine it ran on."""
    if location is None or "://" in location:
        return location
    if tracking_uri.startswith(("http://", "https://")):
        return None
    return Path(location).expanduser().resolve().as_uri()


def _quote(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


@dataclass
class TrackingStore:
    """One MLflow experiment in one tracking store."""

    client: MlflowClient
    experiment_id: str
    experiment_name: str
    tracking_uri: str

    def search(self, filter_string: str = "", max_results: int = 50_000) -> list[Run]:
        """All runs of the experiment matching an MLflow filter, oldest first."""
        runs: list[Run] = []
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=filter_string,
                max_results=min(max_results, 1000),
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token or len(runs) >= max_results:
                return runs

    def finished_run_with_hash(self, config_hash: str) -> Run | None:
        """The configuration's latest ended job run when it FINISHED (skipped ones included),
        else None: a configuration whose latest run failed or was killed runs again, even if an
        older run of it finished (`latest_per_config`). RUNNING runs (live: dead ones are reaped
        first) do not count."""
        runs = self.search(
            f"tags.{TAG_CONFIG_HASH} = {_quote(config_hash)} "
            f"and tags.{TAG_ROLE} = '{ROLE_JOB}' and attributes.status != 'RUNNING'"
        )
        latest = latest_per_config(runs)
        return latest[0] if latest and latest[0].info.status == "FINISHED" else None

    def sweep_parent(self, sweep_name: str) -> Run | None:
        """The parent run of a sweep of this name, if one was started before."""
        runs = self.search(
            f"tags.{TAG_SWEEP} = {_quote(sweep_name)} and tags.{TAG_ROLE} = '{ROLE_SWEEP}'"
        )
        return runs[-1] if runs else None

    def children(self, parent_run_id: str) -> list[Run]:
        """The job runs filed under a sweep's parent run, oldest first."""
        return self.search(f"tags.{TAG_PARENT} = {_quote(parent_run_id)}")

    def end_run(self, run_id: str, outcome: str, reason: str) -> None:
        """Close a run with its outcome (`OUTCOME_STATUS`'s keys) and why: the `outcome` and
        `reason` tags, then the MLflow status the outcome implies."""
        self.client.set_tag(run_id, TAG_OUTCOME, outcome)
        self.client.set_tag(run_id, TAG_REASON, tag_value(reason))
        self.client.set_terminated(run_id, OUTCOME_STATUS[outcome])

    def reap_dead_runs(
        self,
        *,
        config_hash: str | None = None,
        sweep: str | None = None,
        tags: Mapping[str, str] | None = None,
        timeout_s: float = HEARTBEAT_TIMEOUT_S,
    ) -> list[tuple[str, str]]:
        """Mark RUNNING runs whose process is gone KILLED, with tags `outcome` and `reason`.

        Restricted to one config hash, one sweep name (a sweep's parent run carries the sweep
        tag too) and/or runs carrying all of `tags`, when given. `tags` finds a configuration's
        runs of every code version (an upgrade changes the config hash, not the model, ablation,
        dataset or seed), so a run killed before an upgrade is reaped after it. "Gone" is
        `liveness.death_reason` (it does not depend on the code version): a dead pid on this
        host, or no heartbeat for `timeout_s` from another host. Returns (run id, reason) per
        reaped run.
        """
        query = "attributes.status = 'RUNNING'"
        if config_hash is not None:
            query += f" and tags.{TAG_CONFIG_HASH} = {_quote(config_hash)}"
        if sweep is not None:
            query += f" and tags.{TAG_SWEEP} = {_quote(sweep)}"
        for key, value in (tags or {}).items():
            query += f" and tags.{key} = {_quote(value)}"
        reaped = []
        now = time.time()
        for run in self.search(query):
            reason = death_reason(run, now=now, timeout_s=timeout_s)
            if reason is None:
                continue
            run_id = run.info.run_id
            self.end_run(run_id, "killed", f"reaped: {reason}")
            reaped.append((run_id, reason))
        return reaped


def record_reuse(store: TrackingStore, parent_run_id: str, config_hash: str, run_id: str) -> None:
    """Note on the parent that this configuration's FINISHED run (filed anywhere) was reused."""
    store.client.set_tag(parent_run_id, f"{REUSED_PREFIX}{config_hash}", run_id)


def reused_runs(store: TrackingStore, parent: Run) -> list[Run]:
    """The FINISHED runs that the sweep's jobs reused instead of running again."""
    ids = {v for k, v in parent.data.tags.items() if k.startswith(REUSED_PREFIX)}
    return [store.client.get_run(run_id) for run_id in sorted(ids)]


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI (None for other stores and in-memory ones)."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme != "sqlite":
        return None
    path = unquote(parsed.path)
    # sqlite:///relative.db -> "/relative.db"; sqlite:////absolute.db -> "//absolute.db"
    if path in ("", "/", "/:memory:"):
        return None
    return Path(path[1:])


SQLITE_HEADER = b"SQLite format 3\x00"
FILE_STORE_REFUSED = (
    "a file store (a directory of runs): MLflow 3 deprecates file stores and refuses to create "
    "new ones; use sqlite:///PATH/mlflow.db (one machine) or http://HOST:PORT (a tracking "
    "server: `fefm-lab server`)"
)


def _store_problem(tracking_uri: str) -> str | None:
    """Why this store cannot be used, checked before MLflow touches it (None: it can be tried).

    A file store is refused; for SQLite, the directory must be creatable and writable (SQLite
    writes its journal beside the database) and an existing database file must be readable and
    start with SQLite's header (a garbage file is not migrated over).
    """
    scheme = urlparse(tracking_uri).scheme.lower()
    if scheme in ("", "file"):
        return FILE_STORE_REFUSED
    database = sqlite_path(tracking_uri)
    if database is None:
        return None
    directory = database.absolute().parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"cannot create the directory {directory}: {error.strerror}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"the directory {directory} is not writable"
    if database.is_dir():
        return f"{database} is a directory, not a database file"
    if not database.exists() or database.stat().st_size == 0:
        return None
    try:
        with open(database, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as error:
        return f"cannot read {database}: {error.strerror}"
    if header != SQLITE_HEADER:
        return f"{database} is not an SQLite database (it does not start with SQLite's header)"
    if not os.access(database, os.W_OK):
        return f"{database} is not writable"
    return None


def check_store(tracking_uri: str) -> None:
    """Refuse a tracking store that cannot be used with one line naming it (exit 2)."""
    problem = _store_problem(tracking_uri)
    if problem is not None:
        raise UserError(f"mlflow.tracking_uri={masked_uri(tracking_uri)}: {problem}")


@contextmanager
def creation_lock(tracking_uri: str) -> Iterator[None]:
    """Hold an exclusive lock on `<database>.lock` for a SQLite URI; nothing for other URIs.

    The lock is released when the block ends or the process dies (the kernel drops it), so a
    killed process never leaves it held.
    """
    database = sqlite_path(tracking_uri)
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_store(
    tracking_uri: str,
    experiment_name: str,
    artifact_location: str | None = None,
    *,
    client: MlflowClient | None = None,
) -> TrackingStore:
    """Connect, creating the database and the experiment if they do not exist yet.

    Safe from any number of processes at once: creation and migration of a SQLite database run
    under `creation_lock`; a tracking server takes no lock, so the experiment's get-or-create
    and its tags tolerate another process doing the same at the same moment. `client` is one
    already made for `tracking_uri` (tests force races through it).
    """
    check_store(tracking_uri)
    with creation_lock(tracking_uri), quick_requests(retries=START_RETRIES, timeout_s=30):
        try:
            client = client or MlflowClient(tracking_uri=tracking_uri)  # creates / migrates
            experiment_id = get_or_create_experiment(
                client, experiment_name, _artifact_uri(artifact_location, tracking_uri)
            )
            describe_experiment(client, experiment_id, experiment_name)
        except (MlflowException, SQLAlchemyError) as error:
            if is_unreachable(error):
                raise TrackingUnreachable(
                    f"mlflow.tracking_uri={masked_uri(tracking_uri)}: the tracking server cannot "
                    f"be reached ({why_unreachable(error)}); start it (`fefm-lab server`) or "
                    "check the URI"
                ) from None
            if sqlite_path(tracking_uri) is None:
                raise
            raise UserError(
                f"mlflow.tracking_uri={masked_uri(tracking_uri)}: not a usable MLflow database "
                f"(damaged or truncated?): {_first_line(error)}"
            ) from None
    return TrackingStore(client, experiment_id, experiment_name, tracking_uri)


def _first_line(error: BaseException) -> str:
    """The first line of an error's innermost message (SQLAlchemy wraps the driver's)."""
    inner = getattr(error, "orig", None) or error.__cause__ or error
    lines = str(inner).strip().splitlines() or [type(inner).__name__]
    return masked_text(lines[0])
