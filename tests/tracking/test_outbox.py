"""The outbox: writes a server cannot take wait in order, on disk, and are delivered later."""

from __future__ import annotations

import json
import time
from pathlib import Path

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from fefm_lab.tracking.outbox import OUTBOX_FILE, RETRY_FIRST_S, Outbox, TrackingUnreachable
from fefm_lab.tracking.run_logging import log_epoch
from fefm_lab.tracking.store import open_store
from tests.local_ui import free_port


def test_unreachable_writes_wait_on_disk_and_are_delivered_in_order(tmp_path: Path) -> None:
    said: list[str] = []
    nobody = f"http://u:secret@127.0.0.1:{free_port()}"  # nothing listens there
    outbox = Outbox(MlflowClient(tracking_uri=nobody), nobody, tmp_path, say=said.append)
    started = time.monotonic()
    log_epoch(outbox, "run-a", 1, {"train_logloss": 0.5, "val_logloss": 0.4, "val_auc": 0.7})
    outbox.set_tag("run-a", "device", "CPU")
    log_epoch(outbox, "run-a", 2, {"train_logloss": 0.45, "val_logloss": 0.38, "val_auc": 0.72})
    assert time.monotonic() - started < 5  # one quick try, then no wait between tries
    assert outbox.waiting == 3 and not outbox.flush()
    assert said == [
        f"tracking server http://u:***@127.0.0.1:{nobody.rsplit(':', 1)[1]} unreachable "
        f"(Connection refused); training goes on: metrics and tags are kept in "
        f"{tmp_path / OUTBOX_FILE} and sent when it is back"
    ]
    records = [json.loads(line) for line in (tmp_path / OUTBOX_FILE).read_text().splitlines()]
    assert [r["run_id"] for r in records] == ["run-a"] * 3
    assert records[1]["tags"] == [["device", "CPU"]]
    assert sorted(m[0] for m in records[0]["metrics"]) == [
        "train_logloss",
        "val_auc",
        "val_logloss",
    ]
    error = outbox.unreachable("training ended")
    assert isinstance(error, TrackingUnreachable) and error.exit_code == 75
    assert "secret" not in str(error) and f"3 record(s) wait in {tmp_path / OUTBOX_FILE}" in str(
        error
    )

    # the next start: the same directory, a store that takes writes
    store = open_store(f"sqlite:///{tmp_path}/mlflow.db", "outbox")
    run = store.client.create_run(store.experiment_id)
    text = (tmp_path / OUTBOX_FILE).read_text().replace("run-a", run.info.run_id)
    (tmp_path / OUTBOX_FILE).write_text(text)
    later = Outbox(store.client, store.tracking_uri, tmp_path, say=said.append)
    assert later.waiting == 3 and later.flush(now=True)
    assert not (tmp_path / OUTBOX_FILE).exists()
    history = store.client.get_metric_history(run.info.run_id, "val_logloss")
    assert [(m.step, m.value) for m in history] == [(1, 0.4), (2, 0.38)]
    assert store.client.get_run(run.info.run_id).data.tags["device"] == "CPU"


def test_tries_are_spaced_by_backoff(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    outbox = Outbox(MlflowClient(tracking_uri=nobody), nobody, None, say=lambda _: None)
    outbox.log_batch("r", metrics=[Metric("x", 1.0, 0, 0)])
    first = outbox.next_try - time.monotonic()
    assert 0 < first <= RETRY_FIRST_S
    assert not outbox.flush()  # before next_try: not tried, kept
    assert not outbox.flush(now=True)  # tried again: the delay doubles
    assert outbox.next_try - time.monotonic() > RETRY_FIRST_S


def test_the_cause_of_an_unreachable_server_is_short() -> None:
    from mlflow.exceptions import MlflowException

    from fefm_lab.tracking.outbox import why_unreachable

    prefix = "API request to http://h:1/api/2.0/mlflow/runs/log-batch failed with exception "
    causes = {
        "HTTPConnectionPool(host='h', port=1): Max retries exceeded (Caused by NewConnectionError"
        "('<urllib3.connection.HTTPConnection>: Failed to establish a new connection: [Errno 111]"
        " Connection refused'))": "Connection refused",
        "('Connection aborted.', RemoteDisconnected('Remote end closed connection without "
        "response'))": "connection closed by the server",
        "HTTPConnectionPool(host='h', port=1): Read timed out. (read timeout=10)": "timed out",
    }
    for message, cause in causes.items():
        assert why_unreachable(MlflowException(prefix + message)) == cause
