"""Training outlives the tracking server: a real `fefm-lab server` is killed after epoch 1.

(a) kept down: the run trains on, ends with one line and exit 75, its checkpoint and waiting
records kept; with the server back, the same command delivers them and finishes the same MLflow
run without redoing an epoch, with the metrics of an uninterrupted run.
(b) back after 30 s: one run, every metric, and no stall in training longer than the retry
interval (MLflow's own retries stalled it for minutes).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cluster_services as services
import pytest
from mlflow.tracking import MlflowClient

from fefm_lab.tracking.outbox import OUTBOX_FILE, RETRY_MAX_S, UNREACHABLE_EXIT_CODE

pytestmark = pytest.mark.slow
# ~300 steps per epoch on 60k rows: epochs of seconds, so the server dies mid-run
RUN = (
    "debug=tiny",
    "dataset.synthetic.rows=60000",
    "trainer.steps_per_epoch=null",
    "trainer.early_stopping.patience=100",
    "trainer.log_every_steps=25",
)


def _command(root: Path, uri: str, experiment: str, epochs: int) -> list[str]:
    return [
        sys.executable, "-m", "fefm_lab.cli", "run", *RUN, f"trainer.max_epochs={epochs}",
        f"paths.root_dir={root}", f"mlflow.tracking_uri={uri}", f"mlflow.experiment={experiment}",
    ]  # fmt: skip


def _start(command: list[str], log: Path) -> subprocess.Popen:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with log.open("w") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment)


def _server(root: Path, port: int | None = None) -> services.TrackingServer:
    return services.start_tracking_server(f"sqlite:///{root}/server.db", root, port)


def _only_run(client: MlflowClient, experiment: str):
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id]) if found else []
    return runs


def _kill_after_epoch_1(server, client: MlflowClient, experiment: str, job) -> None:
    """Poll the server until the job's run has logged epoch 1, then kill the server."""

    def epoch_1_logged():
        assert job.poll() is None, "the run ended before epoch 1 was seen"
        runs = _only_run(client, experiment)
        return runs and client.get_metric_history(runs[0].info.run_id, "val_logloss")

    services.wait_until(epoch_1_logged, 600, "epoch 1 of the run", interval=0.3)
    services.end_session(server.process, grace=0)


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _baseline(root: Path, uri: str, epochs: int):
    job = _start(_command(root, uri, "uninterrupted", epochs), root / "base.log")
    assert job.wait(timeout=900) == 0, (root / "base.log").read_text()
    client = MlflowClient(tracking_uri=uri)
    (run,) = _only_run(client, "uninterrupted")
    return client, run


def test_server_down_until_the_end_then_the_same_command_finishes_the_run(tmp_path) -> None:
    epochs = 3
    server = _server(tmp_path)
    port = int(server.uri.rsplit(":", 1)[1])
    try:
        client, base = _baseline(tmp_path, server.uri, epochs)
        command = _command(tmp_path, server.uri, "outage", epochs)
        job = _start(command, tmp_path / "first.log")
        try:
            _kill_after_epoch_1(server, client, "outage", job)
            code = job.wait(timeout=900)
        finally:
            if job.poll() is None:
                job.kill()
        first = (tmp_path / "first.log").read_text()
        assert code == UNREACHABLE_EXIT_CODE, first
        lines = [line for line in first.splitlines() if "unreachable" in line]
        assert len(lines) == 2, first  # once when it went away, once at the end
        assert "training goes on" in lines[0]
        assert lines[1].startswith(f"error: tracking server {server.uri} still unreachable")
        assert "Traceback" not in first
        (checkpoint,) = tmp_path.glob("checkpoints/*/checkpoint.npz")
        assert (checkpoint.parent / OUTBOX_FILE).is_file()

        server = _server(tmp_path, port)  # the same store, back on the same address
        second = subprocess.run(command, capture_output=True, text=True, timeout=900)
        assert second.returncode == 0, second.stderr
        assert "from its checkpoint at training done" in second.stderr  # no epoch redone
        (run,) = _only_run(client, "outage")
        assert run.info.status == "FINISHED"
        for key in ("train_logloss", "val_logloss", "val_auc"):
            assert _history(client, run.info.run_id, key) == _history(client, base.info.run_id, key)
        for key in ("test_auc", "test_logloss", "best_epoch"):
            assert run.data.metrics[key] == base.data.metrics[key]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "step_train_logloss")]
        base_steps = client.get_metric_history(base.info.run_id, "step_train_logloss")
        assert sorted(steps) == sorted(m.step for m in base_steps)
        assert not checkpoint.parent.exists()  # finished: checkpoint and outbox gone
    finally:
        server.stop()


def test_server_back_after_30_seconds(tmp_path) -> None:
    # seconds each: training goes on well past the 30 s outage and the server's restart (over a
    # minute on a loaded machine)
    epochs = 60
    server = _server(tmp_path)
    port = int(server.uri.rsplit(":", 1)[1])
    restarted: list[services.TrackingServer] = []
    try:
        client = MlflowClient(tracking_uri=server.uri)
        job = _start(_command(tmp_path, server.uri, "blip", epochs), tmp_path / "run.log")
        try:
            _kill_after_epoch_1(server, client, "blip", job)
            killed_at = time.time()
            timer = threading.Timer(30, lambda: restarted.append(_server(tmp_path, port)))
            timer.start()
            code = job.wait(timeout=900)
            timer.join()
        finally:
            if job.poll() is None:
                job.kill()
        output = (tmp_path / "run.log").read_text()
        assert code == 0, output
        assert restarted, "the server was not restarted"
        down = [line for line in output.splitlines() if "unreachable" in line]
        back = [line for line in output.splitlines() if "reachable again" in line]
        assert len(down) == 1 and "training goes on" in down[0], output
        assert len(back) == 1 and "waiting record(s) delivered in order" in back[0], output
        (run,) = _only_run(client, "blip")
        assert run.info.status == "FINISHED"
        assert [s for s, _ in _history(client, run.info.run_id, "val_logloss")] == list(
            range(1, epochs + 1)
        )
        stamps = sorted(
            m.timestamp / 1000
            for m in client.get_metric_history(run.info.run_id, "step_train_logloss")
        )
        assert stamps[-1] > killed_at + 30  # it trained on through the outage
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        assert max(gaps) < RETRY_MAX_S, gaps  # no stall longer than the retry interval
    finally:
        server.stop()
        for again in restarted:
            again.stop()
