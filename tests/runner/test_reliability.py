"""Faults a user meets, end to end: killed runs, replaced data, refused configs, bad paths."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fefm_lab import cli
from fefm_lab.data import synthesize
from fefm_lab.tracking.store import open_store

TINY = ("debug=tiny", "dataset.synthetic.rows=3000")
NOTHING_IN_THE_LOGIT = [
    "model.use_linear=false",
    "model.use_fefm=false",
    "model.dnn_hidden_units=[]",
]


def _args(root: Path, experiment: str, *more: str, tiny: tuple[str, ...] = TINY) -> list[str]:
    return [*tiny, f"paths.root_dir={root}", f"mlflow.experiment={experiment}", *more]


def _store(root: Path, experiment: str):
    return open_store(f"sqlite:///{root}/mlflow.db", experiment)


@pytest.mark.slow
def test_directory_as_dataset_path_is_a_clear_error(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "criteo_dir"
    folder.mkdir()
    expected = f"error: {folder}: a directory; dataset.path must name a data file\n"
    base = [f"paths.root_dir={tmp_path}", "dataset=criteo", f"dataset.path={folder}"]

    assert cli.main(["prepare", *base]) == 2
    assert capsys.readouterr().err == expected

    assert cli.main(["run", *base, "mlflow.experiment=dir"]) == 2
    err = capsys.readouterr().err
    assert err.endswith(expected) and "Traceback" not in err
    assert err.count("a directory; dataset.path must name a data file") == 1  # said once
    assert _store(tmp_path, "dir").search() == []  # no FAILED run left behind
    assert not list((tmp_path / "data" / "prepared").glob("criteo-*"))


def test_a_bad_data_file_in_a_single_run_is_one_error_line(tmp_path: Path, capsys) -> None:
    """The job's reason reaches the terminal once (as the command's error), and no run is made."""
    bad = tmp_path / "bad.txt"
    bad.write_text("1\tnot\ta\tcriteo\trow\n")
    arguments = ["run", f"paths.root_dir={tmp_path}", "dataset=criteo", f"dataset.path={bad}"]
    assert cli.main([*arguments, "mlflow.experiment=bad"]) == 2
    captured = capsys.readouterr()
    reason = f"{bad}, line 1: expected 40 columns, found 5: '1\\tnot\\ta\\tcriteo\\trow'"
    assert captured.err.endswith(f"error: {reason}\n")
    assert captured.err.count("expected 40 columns") == 1
    assert "data not prepared" not in captured.err and captured.out == ""
    assert _store(tmp_path, "bad").search() == []  # no run: the data never got to one


@pytest.mark.slow
def test_impossible_flags_twice_say_why_both_times(tmp_path: Path, capsys) -> None:
    arguments = ["run", *_args(tmp_path, "refused", *NOTHING_IN_THE_LOGIT)]
    reason = "invalid model configuration: nothing left in the logit"
    assert cli.main(arguments) == 1
    first = capsys.readouterr().err
    assert f"not run: {reason}" in first

    assert cli.main(arguments) == 1  # the old code printed a TypeError traceback here
    second = capsys.readouterr()
    assert f"not run: {reason}" in second.err and "Traceback" not in second.err
    assert "TypeError" not in second.err and second.out == ""
    (run,) = _store(tmp_path, "refused").search()
    assert run.data.tags["outcome"] == "skipped"


@pytest.mark.slow
def test_replaced_raw_data_is_run_again_and_a_copy_is_not(tmp_path: Path, capsys) -> None:
    raw = tmp_path / "raw" / "train.txt"
    synthesize(raw, format="criteo", rows=2000, seed=0, progress=False)
    criteo = ("dataset=criteo", "debug=tiny")
    arguments = ["run", *_args(tmp_path, "replaced", f"dataset.path={raw}", tiny=criteo)]
    assert cli.main(arguments) == 0
    capsys.readouterr()

    synthesize(raw, format="criteo", rows=2000, seed=1, progress=False)  # other data, same path
    assert cli.main(arguments) == 0
    assert "already FINISHED" not in capsys.readouterr().err
    first, second = _store(tmp_path, "replaced").search()
    assert (first.info.status, second.info.status) == ("FINISHED", "FINISHED")
    assert first.data.tags["data_fingerprint"] != second.data.tags["data_fingerprint"]
    assert first.data.tags["config_hash"] != second.data.tags["config_hash"]
    assert first.data.tags["code_version"] == second.data.tags["code_version"]

    copy = tmp_path / "elsewhere" / "copy.txt"
    copy.parent.mkdir()
    shutil.copyfile(raw, copy)  # same content, another path and mtime
    moved = ["run", *_args(tmp_path, "replaced", f"dataset.path={copy}", tiny=criteo)]
    assert cli.main(moved) == 0
    captured = capsys.readouterr()
    assert f"already FINISHED as run {second.info.run_id}" in captured.err
    assert second.info.run_id in captured.out
    assert len(_store(tmp_path, "replaced").search()) == 2


@pytest.mark.slow
def test_sigkilled_run_is_reaped_by_the_next_run_of_its_configuration(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "fefm_lab.cli", "run", *_args(tmp_path, "killed")]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment
    )
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "mlflow.db").exists() or not _running(tmp_path):
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no RUNNING run appeared"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    (killed,) = _running(tmp_path)
    assert killed.data.tags["pid"] == str(process.pid)

    assert cli.main(["run", *_args(tmp_path, "killed")]) == 0
    runs = {run.info.run_id: run for run in _store(tmp_path, "killed").search()}
    assert len(runs) == 2
    reaped = runs.pop(killed.info.run_id)
    (finished,) = runs.values()
    assert (reaped.info.status, finished.info.status) == ("KILLED", "FINISHED")
    assert reaped.data.tags["outcome"] == "killed"
    assert reaped.data.tags["reason"].startswith(f"reaped: process {process.pid} on host ")
    assert finished.data.tags["config_hash"] == reaped.data.tags["config_hash"]


def _running(root: Path) -> list:
    return _store(root, "killed").search("attributes.status = 'RUNNING'")


@pytest.mark.slow
def test_saturating_learning_rate_fails_and_stays_out_of_the_report(tmp_path: Path, capsys):
    from fefm_lab.report.ablation_table import load_runs

    assert cli.main(["run", *_args(tmp_path, "saturated", "seed=1")]) == 0
    assert (
        cli.main(
            [
                "run",
                *_args(tmp_path, "saturated", "seed=2", "trainer.learning_rate=1e6"),
                "trainer.steps_per_epoch=3",  # saturated, not yet collapsed (it is at 16 steps)
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "TrainingDiverged: saturated: validation log loss" in err
    assert "worse than predicting the training click rate" in err and "Traceback" not in err

    store = _store(tmp_path, "saturated")
    by_seed = {run.data.tags["seed"]: run for run in store.search()}
    assert by_seed["2"].info.status == "FAILED"
    assert by_seed["2"].data.tags["outcome"] == "failed"
    assert by_seed["2"].data.tags["reason"].startswith("TrainingDiverged: saturated: ")
    assert list(load_runs(store)["seed"]) == [1]  # the table has only the healthy run


@pytest.mark.slow
@pytest.mark.parametrize("model", ["fm", "lr"])
def test_debug_preset_runs_models_without_a_dnn(tmp_path: Path, model: str, capsys) -> None:
    assert cli.main(["run", *_args(tmp_path, "presets", f"model={model}")]) == 0
    (run,) = _store(tmp_path, "presets").search()
    assert run.info.status == "FINISHED" and run.data.tags["model"] == model
    assert f"test AUC      {run.data.metrics['test_auc']:.5f}" in capsys.readouterr().out
