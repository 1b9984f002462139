"""Long runs through the installed command: SIGKILL and SIGTERM, then the same command again.

Each scenario starts `fefm-lab run` (4 short epochs of 15 batches, a checkpoint after every step),
stops it, reruns it, and compares the printed test AUC / log loss with an uninterrupted run of the
same seed, to the last printed digit (the MLflow metrics, full floats, must be equal too).
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from fefm_lab.tracking.store import open_store
from fefm_lab.training.checkpoint import CheckpointDirectory

pytestmark = pytest.mark.slow

FEFM_LAB = Path(sys.executable).parent / "fefm-lab"
RUN = [
    "debug=tiny",
    "dataset.synthetic.rows=3000",  # 1,920 train rows: 15 batches of 128
    "trainer.steps_per_epoch=null",
    "trainer.max_epochs=4",
    "trainer.early_stopping.patience=4",
    "trainer.verbose=true",
    "trainer.progress_every_seconds=0.001",  # a progress line after every step
    "trainer.checkpoint_every_minutes=1e-6",  # and a checkpoint
    "trainer.checkpoint_max_time_share=null",
    "trainer.log_every_steps=5",
    "model.dnn_hidden_units=[64,32]",
    "model.dnn_dropout=0.2",  # the dropout seed state has to come back exactly too
]
RESULT_LINES = re.compile(r"^test (AUC|log loss) .*$", re.MULTILINE)


def _command(root: Path, data_root: Path) -> list[str]:
    return [
        str(FEFM_LAB),
        "run",
        *RUN,
        f"paths.root_dir={root}",
        f"paths.data_root={data_root}",
    ]


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def _run(root: Path, data_root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        _command(root, data_root),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=root,
        env=_environment(),
    )


def _run_until(root: Path, data_root: Path, pattern: str, signal_number: int):
    """Start the command, send `signal_number` at the first stderr line matching `pattern`."""
    process = subprocess.Popen(
        _command(root, data_root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=root,
        env=_environment(),
    )
    seen: list[str] = []
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([process.stderr], [], [], 5)
            if not ready:
                continue
            line = process.stderr.readline()
            if not line:
                break
            seen.append(line)
            if re.search(pattern, line):
                process.send_signal(signal_number)
                break
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out, "".join(seen) + err


def _store(root: Path):
    return open_store(f"sqlite:///{root}/mlflow.db", "fefm-lab")


def _checkpoint(root: Path) -> CheckpointDirectory:
    (directory,) = (root / "checkpoints").iterdir()
    return CheckpointDirectory(root / "checkpoints", directory.name)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("shared-data")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_root: Path):
    """The uninterrupted run: (printed result lines, test metrics, its stderr)."""
    root = tmp_path_factory.mktemp("reference")
    result = _run(root, data_root)
    assert result.returncode == 0, result.stderr
    (run,) = _store(root).search()
    return RESULT_LINES.findall(result.stdout), run.data.metrics, result.stderr, run


def _assert_finished_like_reference(root: Path, stdout: str, reference) -> None:
    printed, metrics, _, _ = reference
    assert RESULT_LINES.findall(stdout) == printed
    runs = _store(root).search()
    finished = [run for run in runs if run.info.status == "FINISHED"]
    assert len(finished) == 1
    run = finished[0]
    for key in ("test_auc", "test_logloss", "best_val_logloss", "best_epoch"):
        assert run.data.metrics[key] == metrics[key], key
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    epochs = client.get_metric_history(run.info.run_id, "val_logloss")
    assert sorted(m.step for m in epochs) == [1, 2, 3, 4]
    steps = client.get_metric_history(run.info.run_id, "step_train_logloss")
    assert {m.step for m in steps} == set(range(5, 61, 5))
    assert not (root / "checkpoints" / run.data.tags["config_hash"]).exists()


def test_uninterrupted_run_prints_plain_progress_lines_and_no_tensorflow_banner(
    reference,
) -> None:
    _, metrics, stderr, run = reference
    assert re.search(
        r"^epoch 2/4 +\d+\.\d% batch \d+/15  [\d,]+ samples/s  train logloss \d\.\d{5}  "
        r"left \d:\d\d:\d\d$",
        stderr,
        re.MULTILINE,
    )
    for banner in ("oneDNN", "absl::InitializeLog", "cpu_feature_guard", "TensorFlow binary"):
        assert banner not in stderr
    assert "\r" not in stderr  # log files get whole lines, no carriage-return redraws
    assert run.data.tags["device"] == "CPU"
    assert "checkpoint_seconds" in metrics


@pytest.mark.parametrize(
    ("pattern", "where"),
    [
        (r"^epoch 3/4 +\d", "after epoch 2"),  # epoch 3's first step: epoch 2 was saved
        (r"^epoch 2/4 +[2-5]\d\.\d%", "mid-epoch"),
    ],
)
def test_sigkilled_run_continues_in_the_same_mlflow_run_to_the_same_result(
    tmp_path: Path, data_root: Path, reference, pattern: str, where: str
) -> None:
    code, _, stderr = _run_until(tmp_path, data_root, pattern, signal.SIGKILL)
    assert code == -signal.SIGKILL, stderr[-3000:]
    (killed,) = _store(tmp_path).search()
    assert killed.info.status == "RUNNING"  # nobody could record anything
    state = _checkpoint(tmp_path).load()
    assert state is not None and state.run_id == killed.info.run_id
    if where == "mid-epoch":
        assert state.position.batches_done > 0
    else:
        assert state.position.epoch >= 3

    again = _run(tmp_path, data_root)
    assert again.returncode == 0, again.stderr
    assert f"resuming run {killed.info.run_id}" in again.stderr
    _assert_finished_like_reference(tmp_path, again.stdout, reference)
    (run,) = _store(tmp_path).search()  # one run, not two
    assert run.info.run_id == killed.info.run_id
    assert run.data.tags["resumed"].startswith("1 time(s), last from epoch")


def test_sigterm_saves_marks_killed_exits_nonzero_and_the_rerun_matches(
    tmp_path: Path, data_root: Path, reference
) -> None:
    code, _, stderr = _run_until(tmp_path, data_root, r"^epoch 2/4 +[2-5]\d\.\d%", signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, stderr[-3000:]
    assert re.search(
        r"stopped: stopped by SIGTERM: checkpoint at epoch 2, batch \d+, step \d+ saved to "
        r".*checkpoint\.npz; the same command continues it",
        stderr,
    ), stderr
    (killed,) = _store(tmp_path).search()
    assert killed.info.status == "KILLED"
    assert killed.data.tags["outcome"] == "killed"
    assert killed.data.tags["reason"].startswith("stopped by SIGTERM: checkpoint at epoch 2")
    stopped_at = _checkpoint(tmp_path).load().position
    assert stopped_at.epoch == 2
    assert "Traceback" not in stderr

    again = _run(tmp_path, data_root)
    assert again.returncode == 0, again.stderr
    _assert_finished_like_reference(tmp_path, again.stdout, reference)
    (run,) = _store(tmp_path).search()
    assert run.info.run_id == killed.info.run_id
    assert "reason" not in run.data.tags and run.data.tags["outcome"] == "finished"
    # the CPU time of both starts (the first one's up to its checkpoint)
    assert run.data.metrics["cpu_seconds"] > stopped_at.cpu_seconds > 0


def test_run_stopped_at_training_done_tests_in_a_new_process_to_the_same_result(
    tmp_path: Path, data_root: Path, reference
) -> None:
    """SIGTERM once the last epoch's line is out: its checkpoint says "training done", so the
    rerun only tests. Validation (480 rows) and test (600) are one batch each: the rerun's
    first prediction is of the test split, the uninterrupted run's of the validation split."""
    code, _, stderr = _run_until(tmp_path, data_root, r"^epoch 4: ", signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, stderr[-3000:]
    (killed,) = _store(tmp_path).search()
    assert killed.info.status == "KILLED"
    assert _checkpoint(tmp_path).load().describe() == "training done, step 60"

    again = _run(tmp_path, data_root)
    assert again.returncode == 0, again.stderr
    assert "from its checkpoint at training done" in again.stderr
    _assert_finished_like_reference(tmp_path, again.stdout, reference)
    (run,) = _store(tmp_path).search()
    assert run.info.run_id == killed.info.run_id
    assert run.data.tags["resumed"] == "1 time(s), last from training done, step 60"


def test_truncated_checkpoint_is_ignored_and_the_run_starts_over(
    tmp_path: Path, data_root: Path, reference
) -> None:
    code, _, stderr = _run_until(tmp_path, data_root, r"^epoch 3/4 +\d", signal.SIGKILL)
    assert code == -signal.SIGKILL, stderr[-3000:]
    checkpoint = _checkpoint(tmp_path).path
    with open(checkpoint, "r+b") as handle:
        handle.truncate(checkpoint.stat().st_size // 3)

    again = _run(tmp_path, data_root)
    assert again.returncode == 0, again.stderr
    assert f"ignoring checkpoint {checkpoint}: BadZipFile" in again.stderr
    assert "resuming" not in again.stderr
    _assert_finished_like_reference(tmp_path, again.stdout, reference)


def test_on_a_terminal_the_run_draws_a_progress_bar_with_time_left(
    tmp_path: Path, data_root: Path
) -> None:
    """The run's stdout and stderr are a pseudo-terminal, as in an interactive shell."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    command = [*_command(tmp_path, data_root), "trainer.progress=auto"]
    command.remove("trainer.progress_every_seconds=0.001")
    process = subprocess.Popen(
        command,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=tmp_path,
        env={**_environment(), "TERM": "xterm-256color"},
        close_fds=True,
    )
    os.close(follower)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every holder of the follower side has closed it
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=600) == 0
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()
    screen = b"".join(chunks).decode(errors="replace")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert "━" in text  # rich's bar
    assert re.search(r"epoch 4/4 .*100%.* samples/s train logloss \d\.\d{5} left 0:00:00", text)
    assert re.search(r"left \d:\d\d:\d\d", text)
    assert "test AUC" in text
    for banner in ("oneDNN", "absl::InitializeLog", "cpu_feature_guard"):
        assert banner not in text
