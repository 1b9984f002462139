"""A run's metric and tag writes that outlive a tracking-server outage.

Every write goes into an ordered outbox and is sent at once. A write the server cannot take
(connection refused, timeout, a 5xx answer) stays there, with every write after it, while
training goes on: in memory and on disk beside the checkpoint (`outbox.jsonl`, rewritten
atomically while records wait), so a run that ends or is killed before the server is back keeps
them for its next start, which sends them first. Sends are retried with backoff (`RETRY_FIRST_S`
doubling up to `RETRY_MAX_S`); each try is one request with MLflow's own retries off and a short
time limit, so training never waits on the server longer than one try (MLflow's defaults, seven
retries with backoff and a 120 s limit, stalled a run for about 8 minutes). The run says once,
in one line, that the server is unreachable and that training goes on, and once that it is back.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException, RestException
from mlflow.tracking import MlflowClient

from fefm_lab.errors import UserError
from fefm_lab.fileio import atomic_write_text
from fefm_lab.uris import masked_uri

OUTBOX_FILE = "outbox.jsonl"
# MLflow's log-batch limits (1000 metrics; 100 params and tags together), and how many batches
# one write sends after an outage before training goes on (the rest with the next writes).
BATCH_METRICS = 1000
BATCH_PARAMS_AND_TAGS = 100
BATCHES_PER_FLUSH = 4
RETRY_FIRST_S = 2.0
RETRY_MAX_S = 30.0
TRY_TIMEOUT_S = 10  # one request's time limit (seconds): a black-holed server costs no more
# A run's or a sweep's last writes (test metrics, artifacts, status, summary): a few retries and
# a request limit that lets a model upload through, then "unreachable" with everything kept.
END_RETRIES = 3
END_TIMEOUT_S = 120
# sysexits' EX_TEMPFAIL: nothing is wrong with the run; start it again when the server is back.
UNREACHABLE_EXIT_CODE = 75


class TrackingUnreachable(UserError):
    """The tracking server cannot be reached (one line; exit 75: try again later)."""

    exit_code = UNREACHABLE_EXIT_CODE


def is_unreachable(error: BaseException) -> bool:
    """Whether a tracking call failed for want of a server (no connection, a timeout, an HTTP
    error without MLflow's JSON answer), not because the server refused the request."""
    if isinstance(error, RestException):
        return False
    return isinstance(error, MlflowException) and str(error).startswith("API request to")


def why_unreachable(error: BaseException) -> str:
    """`Connection refused`, `timeout`, ...: the short cause inside MLflow's long message."""
    text = str(error)
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if found:
        return found.group(1).strip()
    if "timeout" in text.lower() or "timed out" in text.lower():
        return "timed out"
    if "RemoteDisconnected" in text or "Connection aborted" in text or "reset" in text.lower():
        return "connection closed by the server"
    found = re.search(r"error code (\d+)", text)
    return f"HTTP {found.group(1)}" if found else "no answer"


@contextmanager
def quick_requests(retries: int = 0, timeout_s: int = TRY_TIMEOUT_S) -> Iterator[None]:
    """MLflow's HTTP retries and time limit for the calls in the block (read per request)."""
    settings = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s),
    }
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Outbox:
    """The ordered, retried metric and tag writes of runs in one tracking store.

    It takes `log_batch` and `set_tag` like an `MlflowClient`, so `run_logging` writes through
    it unchanged. `directory` (the checkpoint's) keeps waiting records on disk; None keeps them
    in memory only.
    """

    def __init__(
        self,
        client: MlflowClient,
        tracking_uri: str,
        directory: Path | None,
        say: Callable[[str], None] = _say,
    ) -> None:
        self.client = client
        self.tracking_uri = tracking_uri
        self.path = None if directory is None else Path(directory) / OUTBOX_FILE
        self.say = say
        self.pending: list[dict[str, Any]] = self._load()
        self.down_since: float | None = None
        self.next_try = 0.0
        self.delay = RETRY_FIRST_S
        self.delivered = 0

    def _load(self) -> list[dict[str, Any]]:
        if self.path is None or not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def _persist(self) -> None:
        if self.path is None:
            return
        if self.pending:
            lines = "".join(json.dumps(record) + "\n" for record in self.pending)
            atomic_write_text(self.path, lines)
        else:
            self.path.unlink(missing_ok=True)

    # ------------------------------------------------------------ writes (MlflowClient's API)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        record = {
            "run_id": run_id,
            "metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics],
            "params": [[p.key, p.value] for p in params],
            "tags": [[t.key, t.value] for t in tags],
        }
        self.pending.append(record)
        self.flush()

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, tags=[RunTag(key, str(value))])

    # ------------------------------------------------------------ delivery

    @property
    def waiting(self) -> int:
        return len(self.pending)

    def flush(self, *, now: bool = False) -> bool:
        """Send the waiting records in order; True when none is left.

        Between tries after a failure it only keeps the records on disk, unless `now`.
        """
        if not self.pending:
            return True
        if not now and time.monotonic() < self.next_try:
            self._persist()
            return False
        try:
            with quick_requests():
                for _ in range(len(self.pending) if now else BATCHES_PER_FLUSH):
                    if not self.pending:
                        break
                    count = self._send_batch()
                    del self.pending[:count]
                    self.delivered += count
        except MlflowException as error:
            if not is_unreachable(error):
                raise
            self._went_down(error)
            self._persist()
            return False
        if self.pending:  # the server is back; the rest goes with the next writes
            self._persist()
            return False
        self._came_back()
        self._persist()
        return True

    def _send_batch(self) -> int:
        """Send the first waiting records of one run as one request (within MLflow's batch
        limits); how many records it took."""
        run_id = self.pending[0]["run_id"]
        metrics: list[Metric] = []
        params: list[Param] = []
        tags: list[RunTag] = []
        count = 0
        for record in self.pending:
            if record["run_id"] != run_id or (
                count
                and (
                    len(metrics) + len(record["metrics"]) > BATCH_METRICS
                    or len(params) + len(record["params"]) + len(tags) + len(record["tags"])
                    > BATCH_PARAMS_AND_TAGS
                )
            ):
                break
            metrics += [Metric(k, v, ts, step) for k, v, ts, step in record["metrics"]]
            params += [Param(k, v) for k, v in record["params"]]
            tags += [RunTag(k, v) for k, v in record["tags"]]
            count += 1
        self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
        return count

    def _went_down(self, error: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.time()
            self.delivered = 0
            kept = f"kept in {self.path}" if self.path is not None else "kept in memory"
            self.say(
                f"tracking server {masked_uri(self.tracking_uri)} unreachable "
                f"({why_unreachable(error)}); training goes on: metrics and tags are {kept} "
                "and sent when it is back"
            )
        else:
            self.delay = min(self.delay * 2, RETRY_MAX_S)
        self.next_try = time.monotonic() + self.delay

    def _came_back(self) -> None:
        if self.down_since is not None:
            self.say(
                f"tracking server {masked_uri(self.tracking_uri)} reachable again after "
                f"{time.time() - self.down_since:.0f} s: {self.delivered} waiting record(s) "
                "delivered in order"
            )
        self.down_since, self.delay, self.next_try, self.delivered = None, RETRY_FIRST_S, 0.0, 0

    def unreachable(self, what: str) -> TrackingUnreachable:
        """The one-line error for a run that ends while records still wait."""
        where = self.path if self.path is not None else "memory"
        return TrackingUnreachable(
            f"tracking server {masked_uri(self.tracking_uri)} still unreachable: {what}; "
            f"{self.waiting} record(s) wait in {where} beside the kept checkpoint: start the same "
            "command again when the server is back to deliver them and finish the run"
        )
