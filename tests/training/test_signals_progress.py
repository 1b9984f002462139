"""Stop signals (deferred while training, at once elsewhere), progress output, device choice."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys

import pytest

from fefm_lab.errors import ConfigError
from fefm_lab.progress import PlainLines, RichBar, format_duration, make_progress
from fefm_lab.training.signals import StopSignals, TrainingStopped


def test_sigterm_inside_deferred_waits_for_the_loop_then_raises() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    with StopSignals() as stop:
        with pytest.raises(TrainingStopped) as stopped, stop.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            reached = True  # the handler only recorded the signal
        assert reached and stop.requested == signal.SIGTERM
    assert stopped.value.exit_code == 143 and stopped.value.reason == "stopped by SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is previous


def test_slurms_time_limit_warning_sigusr2_stops_like_sigterm() -> None:
    previous = signal.getsignal(signal.SIGUSR2)
    with StopSignals() as stop:
        with pytest.raises(TrainingStopped) as stopped, stop.deferred():
            os.kill(os.getpid(), signal.SIGUSR2)
            reached = True
        assert reached and stop.requested == signal.SIGUSR2
    assert stopped.value.exit_code == 140 and stopped.value.reason == "stopped by SIGUSR2"
    assert signal.getsignal(signal.SIGUSR2) is previous  # submitit's handler is back


def test_a_signal_outside_the_training_loop_raises_at_once() -> None:
    with StopSignals(), pytest.raises(TrainingStopped, match="stopped by SIGTERM"):
        os.kill(os.getpid(), signal.SIGTERM)
        signal.getsignal(signal.SIGTERM)  # any bytecode: the handler has run before this returns
        pytest.fail("the handler did not raise")


def test_a_second_ctrl_c_does_not_wait() -> None:
    with StopSignals() as stop, stop.deferred():
        signal.raise_signal(signal.SIGINT)
        assert stop.requested == signal.SIGINT
        with pytest.raises(TrainingStopped) as stopped:
            signal.raise_signal(signal.SIGINT)
        assert stopped.value.exit_code == 130
        stop.requested = None  # handled: leave the block quietly


def test_stopped_is_not_an_exception_a_sweep_would_swallow() -> None:
    assert issubclass(TrainingStopped, KeyboardInterrupt)
    assert not issubclass(TrainingStopped, Exception)
    assert TrainingStopped(signal.SIGTERM, "checkpoint saved").reason == (
        "stopped by SIGTERM: checkpoint saved"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0:00:00"), (59.6, "0:01:00"), (3723, "1:02:03"), (float("nan"), "-:--:--")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_plain_lines_carry_percent_rate_loss_and_time_left() -> None:
    stream = io.StringIO()
    lines = PlainLines(stream, every_seconds=0.0)
    lines.start(epoch=2, max_epochs=5, total_batches=8, done_batches=2)
    lines.update(batches=4, samples=256, train_logloss=0.5)
    lines.finish()
    pattern = (
        r"epoch 2/5  50\.0% batch 4/8  [\d,]+ samples/s  train logloss 0\.50000  left 0:00:0\d"
    )
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # the update's line (interval 0) and the epoch end's
    assert all(re.fullmatch(pattern, line) for line in lines), lines


def test_plain_lines_wait_for_their_interval() -> None:
    stream = io.StringIO()
    lines = PlainLines(stream, every_seconds=3600.0)
    lines.start(epoch=1, max_epochs=1, total_batches=10)
    for batch in range(1, 10):
        lines.update(batch, batch * 10, 0.7)
    assert stream.getvalue() == ""


def test_make_progress_picks_lines_off_a_terminal_and_a_bar_on_request() -> None:
    stream = io.StringIO()
    assert isinstance(make_progress("auto", True, 30.0, stream), PlainLines)
    assert isinstance(make_progress("lines", True, 30.0, stream), PlainLines)
    assert isinstance(make_progress("bar", True, 30.0, stream), RichBar)
    silent = make_progress("auto", False, 30.0, stream)
    assert not isinstance(silent, PlainLines | RichBar)


def test_bar_shows_percent_rate_loss_and_time_left() -> None:
    stream = io.StringIO()
    bar = RichBar(stream, force_terminal=True)
    bar.start(epoch=1, max_epochs=3, total_batches=10)
    bar.update(batches=5, samples=640, train_logloss=0.4321)
    bar.finish()
    bar.close()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    assert "epoch 1/3" in text and "50%" in text and "train logloss 0.43210" in text
    assert re.search(r"left \d:\d\d:\d\d", text), text


def test_device_cpu_and_auto_on_a_machine_without_gpu() -> None:
    from fefm_lab.training.device import select_device

    import_tf = __import__("tensorflow")
    if import_tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    assert select_device("cpu") == "CPU"
    assert select_device("auto") == "CPU"
    with pytest.raises(ConfigError, match=r"trainer.device=gpu, but TensorFlow .* sees no GPU"):
        select_device("gpu")


@pytest.mark.slow
def test_tensorflow_import_is_quiet_unless_verbose() -> None:
    code = (
        "import sys; from fefm_lab.training.device import import_tensorflow; "
        "import_tensorflow(verbose=sys.argv[1] == 'yes'); print('imported', file=sys.stderr)"
    )
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    quiet, loud = (
        subprocess.run(
            [sys.executable, "-c", code, flag],
            capture_output=True,
            text=True,
            env=environment,
            timeout=300,
            check=True,
        ).stderr
        for flag in ("no", "yes")
    )
    assert quiet == "imported\n"
    assert "oneDNN custom operations" in loud and loud.endswith("imported\n")


def test_pass_progress_lines_carry_percent_rows_rate_and_time_left() -> None:
    from fefm_lab.progress import PassProgress

    stream = io.StringIO()
    progress = PassProgress(stream, every_seconds=0.0, bar=False)
    progress.start("prepare x: pass 1/2 (vocabularies)", total_bytes=4_000_000)
    progress.update(rows=10_000, bytes_done=1_000_000)
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(
        r"prepare x: pass 1/2 \(vocabularies\)  25\.0%  10,000 rows  [\d,]+ rows/s  "
        r"[\d,]+\.\d MB/s  left \d:\d\d:\d\d",
        lines[0],
    ), lines[0]


def test_prepare_shows_both_passes_with_their_progress(tmp_path, capsys) -> None:
    from fefm_lab.data import prepare

    path = tmp_path / "rows.csv"
    path.write_text("label,a,b\n" + "".join(f"{i % 2},v{i % 7},w{i % 5}\n" for i in range(500)))
    config = {
        "name": "tiny",
        "format": "generic",
        "path": str(path),
        "separator": ",",
        "header": True,
        "label": "label",
        "categorical": ["a", "b"],
        "numeric": [],
        "min_count": 1,
    }
    prepare(config, seed=0, data_root=tmp_path / "prepared", progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    for line, name in zip(lines, ("pass 1/2 (vocabularies)", "pass 2/2 (shards)"), strict=True):
        assert line.startswith(f"prepare tiny: {name} 100.0%  500 rows  "), line
        assert line.endswith("left 0:00:00") and "MB/s" in line
