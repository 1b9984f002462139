"""Checkpoints: exact resume mid-epoch and at an epoch end, damaged or foreign files, the lock."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from planted_data import prepare_planted

from fefm_lab.data.input import eval_dataset
from fefm_lab.model import build_model
from fefm_lab.training import Trainer, TrainerConfig, fit_and_evaluate
from fefm_lab.training.checkpoint import CheckpointDirectory, CheckpointInUse
from fefm_lab.training.signals import StopSignals, TrainingStopped

FIELDS = ["a", "b", "c"]
HASH = "0123456789abcdef"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    """1,500 rows (960 train: 8 batches of 128, the last one short); a planted pair a x b."""
    return prepare_planted(
        tmp_path_factory.mktemp("checkpoint"),
        name="ckpt",
        fields=FIELDS,
        rows=1500,
        values_per_field=6,
        seed=11,
        logit=lambda v: -1.0 + 2.0 * ((v[:, 0] + v[:, 1]) % 2 == 0),
    )


def _model(data, seed: int = 3):
    """DeepFEFM with dropout: the dropout seed state must travel in the checkpoint too."""
    linear, dnn = data.feature_columns(4)
    return build_model(
        "deepfefm", linear, dnn, seed=seed, dnn_hidden_units=[16, 8], dnn_dropout=0.3
    )


def _config(**overrides) -> TrainerConfig:
    values = {
        "optimizer": "adam",
        "learning_rate": 0.02,
        "batch_size": 128,
        "max_epochs": 4,
        "verbose": False,
        "log_every_steps": 1,
    }
    values.update(overrides)
    return TrainerConfig(**values)


def _stop_callbacks(trigger: str, at: int, stop: StopSignals) -> dict:
    """Callbacks that act like SIGTERM arriving during global step `at` or epoch `at`'s end."""

    def request(current: int, _values) -> None:
        if current == at:
            stop.requested = signal.SIGTERM

    return {"on_steps" if trigger == "step" else "on_epoch_end": request}


def _assert_same_result(resumed, reference) -> None:
    assert resumed.test_auc == reference.test_auc
    assert resumed.test_logloss == reference.test_logloss
    assert resumed.best_epoch == reference.best_epoch
    assert resumed.steps == reference.steps
    for key in ("train_logloss", "val_logloss", "val_auc"):
        assert [h[key] for h in resumed.history] == [h[key] for h in reference.history]
    for a, b in zip(resumed.model.variables, reference.model.variables, strict=True):
        np.testing.assert_array_equal(np.array(a), np.array(b))


@pytest.fixture(scope="module")
def uninterrupted(data):
    """The reference run; its step reports (every 4 steps) are kept on the result."""
    reported: list[tuple[int, dict]] = []
    result = fit_and_evaluate(
        _model(data),
        data,
        _config(log_every_steps=4),
        seed=3,
        on_steps=lambda step, values: reported.append((step, values)),
    )
    result.reported = reported
    return result


@pytest.mark.parametrize(
    ("trigger", "at", "where"),
    [
        ("step", 13, "epoch 2, batch 5, step 13"),
        # the resumed run's first batch is the epoch's short last one
        ("step", 15, "epoch 2, batch 7, step 15"),
        # the epoch's batches done, validation still to do
        pytest.param("step", 16, "epoch 2, batch 8, step 16", marks=pytest.mark.slow),
        pytest.param("epoch", 2, "epoch 3, batch 0, step 16", marks=pytest.mark.slow),
        # after the last epoch: only the test evaluation is left, of the best epoch's weights
        ("epoch", 4, "training done, step 32"),
    ],
    ids=["mid-epoch", "before-short-batch", "before-validation", "epoch-end", "training-done"],
)
def test_stopped_run_resumes_to_the_uninterrupted_result(
    data, uninterrupted, tmp_path: Path, trigger: str, at: int, where: str
) -> None:
    checkpoints = CheckpointDirectory(tmp_path, HASH)
    with StopSignals(signals=()) as stop, pytest.raises(TrainingStopped) as stopped:
        fit_and_evaluate(
            _model(data),
            data,
            _config(),
            seed=3,
            checkpoints=checkpoints,
            run_id="run-1",
            stop=stop,
            **_stop_callbacks(trigger, at, stop),
        )
    assert stopped.value.exit_code == 128 + signal.SIGTERM
    assert f"checkpoint at {where} saved to {checkpoints.path}" in stopped.value.reason

    state = checkpoints.load()
    assert state is not None and state.run_id == "run-1" and state.config_hash == HASH
    assert state.describe() == where
    epochs_done = at if trigger == "epoch" else (at - 1) // 8
    assert [h["epoch"] for h in state.position.history] == list(range(1, epochs_done + 1))

    cpu_before = time.process_time()
    resumed = fit_and_evaluate(
        _model(data, seed=99), data, _config(), seed=3, checkpoints=checkpoints, resume=state
    )
    cpu_of_second_start = time.process_time() - cpu_before
    assert resumed.resumed_from == where
    _assert_same_result(resumed, uninterrupted)
    # the run's CPU time: the first start's (up to its checkpoint) plus the second's
    assert 0 < state.position.cpu_seconds < resumed.cpu_seconds
    assert resumed.cpu_seconds <= state.position.cpu_seconds + cpu_of_second_start


@pytest.mark.slow
def test_a_run_compiled_with_xla_resumes_to_its_uninterrupted_result(data, tmp_path: Path) -> None:
    """trainer.jit_compile: the step is an XLA cluster, restored variables feed it the same."""
    config = _config(jit_compile=True)
    reference = fit_and_evaluate(_model(data), data, config, seed=3)
    checkpoints = CheckpointDirectory(tmp_path, HASH)
    with StopSignals(signals=()) as stop, pytest.raises(TrainingStopped):
        fit_and_evaluate(
            _model(data), data, config, seed=3, checkpoints=checkpoints, run_id="run-1",
            stop=stop, **_stop_callbacks("step", 13, stop),
        )  # fmt: skip
    state = checkpoints.load()
    assert state is not None and state.describe() == "epoch 2, batch 5, step 13"
    resumed = fit_and_evaluate(
        _model(data, seed=99), data, config, seed=3, checkpoints=checkpoints, resume=state
    )
    _assert_same_result(resumed, reference)


def test_a_split_gets_the_same_predictions_whatever_was_predicted_before(uninterrupted, data):
    """Validation (247 rows) and test (273) are one short batch each: the test predictions of a
    trainer that predicted validation first and of one that did not are the same floats. (A
    relaxed trace of the second shape met gave 43 of the 273 other last bits, so a run resumed
    at "training done", which tests first, differed from an uninterrupted one.)"""
    config = _config()
    validation = eval_dataset(data, "validation", config.eval_batch_size)
    test = eval_dataset(data, "test", config.eval_batch_size)
    validation_first = Trainer(uninterrupted.model, config)
    _, validation_a = validation_first.predict(validation)
    _, test_a = validation_first.predict(test)
    test_first = Trainer(uninterrupted.model, config)
    _, test_b = test_first.predict(test)
    _, validation_b = test_first.predict(validation)
    np.testing.assert_array_equal(test_a, test_b)
    np.testing.assert_array_equal(validation_a, validation_b)


def test_stop_without_signal_mid_run_changes_nothing(data, uninterrupted, tmp_path: Path) -> None:
    """Saving every step (a tiny interval) leaves the numbers alone."""
    checkpoints = CheckpointDirectory(tmp_path, HASH)
    result = fit_and_evaluate(
        _model(data),
        data,
        _config(checkpoint_every_minutes=1e-9, checkpoint_max_time_share=None),
        seed=3,
        checkpoints=checkpoints,
    )
    _assert_same_result(result, uninterrupted)
    # one after every step (none of them waits a whole interval) plus one per epoch end
    assert result.checkpoints_saved == result.steps + len(result.history)
    assert checkpoints.load().position.training_done


def test_step_metrics_report_the_mean_loss_of_the_window(uninterrupted) -> None:
    reported = uninterrupted.reported
    assert [step for step, _ in reported] == list(range(4, uninterrupted.steps + 1, 4))
    # the 8 steps of epoch 1 are reported as two windows of 4: their mean is the epoch's loss
    first_epoch = (reported[0][1]["train_logloss"] + reported[1][1]["train_logloss"]) / 2
    assert first_epoch == pytest.approx(uninterrupted.history[0]["train_logloss"], rel=1e-6)
    assert all(values["samples_per_second"] > 0 for _, values in reported)


@pytest.fixture(scope="module")
def one_epoch_checkpoint(data, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a checkpoint saved at the end of a one-epoch run."""
    directory = CheckpointDirectory(tmp_path_factory.mktemp("saved"), HASH)
    fit_and_evaluate(_model(data), data, _config(max_epochs=1), seed=3, checkpoints=directory)
    return directory.path.read_bytes()


def _saved_checkpoint(saved: bytes, directory: CheckpointDirectory) -> None:
    directory.directory.mkdir(parents=True, exist_ok=True)
    directory.path.write_bytes(saved)
    assert directory.load() is not None


def test_truncated_checkpoint_is_ignored_with_a_warning(
    one_epoch_checkpoint: bytes, tmp_path: Path, caplog
) -> None:
    checkpoints = CheckpointDirectory(tmp_path, HASH)
    _saved_checkpoint(one_epoch_checkpoint, checkpoints)
    size = checkpoints.path.stat().st_size
    with open(checkpoints.path, "r+b") as handle:
        handle.truncate(size // 2)
    with caplog.at_level(logging.WARNING, logger="fefm_lab.training.checkpoint"):
        assert checkpoints.load() is None
    assert f"ignoring checkpoint {checkpoints.path}: BadZipFile" in caplog.text
    assert "training starts over" in caplog.text


def test_flipped_byte_fails_the_crc_and_is_ignored(
    one_epoch_checkpoint: bytes, tmp_path: Path, caplog
) -> None:
    checkpoints = CheckpointDirectory(tmp_path, HASH)
    _saved_checkpoint(one_epoch_checkpoint, checkpoints)
    raw = bytearray(checkpoints.path.read_bytes())
    middle = len(raw) // 2  # inside an array member, not in the zip directory
    raw[middle] ^= 0xFF
    checkpoints.path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="fefm_lab.training.checkpoint"):
        assert checkpoints.load() is None
    assert "ignoring checkpoint" in caplog.text and "CRC" in caplog.text


def test_checkpoint_of_another_configuration_is_never_used(
    one_epoch_checkpoint: bytes, tmp_path: Path, caplog
) -> None:
    mine = CheckpointDirectory(tmp_path, HASH)
    _saved_checkpoint(one_epoch_checkpoint, mine)
    other = CheckpointDirectory(tmp_path, "fedcba9876543210")
    other.directory.mkdir()
    mine.path.rename(other.path)  # someone copied a checkpoint into the wrong directory
    with caplog.at_level(logging.WARNING, logger="fefm_lab.training.checkpoint"):
        assert other.load() is None
    assert f"belongs to config hash '{HASH}', not 'fedcba9876543210'" in caplog.text


def test_a_model_of_another_shape_refuses_the_checkpoint(
    data, one_epoch_checkpoint, tmp_path: Path
) -> None:
    from fefm_lab.training import Trainer

    checkpoints = CheckpointDirectory(tmp_path, HASH)
    _saved_checkpoint(one_epoch_checkpoint, checkpoints)
    linear, dnn = data.feature_columns(4)
    wider = build_model("deepfefm", linear, dnn, seed=3, dnn_hidden_units=[32, 8], dnn_dropout=0.3)
    problem = Trainer(wider, _config()).mismatch(checkpoints.load())
    assert problem is not None and "dnn_hidden_0/kernel has shape (15, 16), not (15, 32)" in problem


def test_the_lock_keeps_a_second_trainer_out_until_released(tmp_path: Path) -> None:
    first = CheckpointDirectory(tmp_path, HASH)
    first.lock()
    second = CheckpointDirectory(tmp_path, HASH)
    with pytest.raises(CheckpointInUse, match=r"being trained by another process \(host .* pid"):
        second.lock()
    first.unlock()
    second.lock()
    second.delete()
    assert not second.directory.exists()


def test_slow_saves_are_spaced_out_to_keep_their_share_of_the_time(data, tmp_path: Path) -> None:
    """Saves wanted every step, but each one must cost at most 1e-9 of the time: none follows."""
    checkpoints = CheckpointDirectory(tmp_path, HASH)
    result = fit_and_evaluate(
        _model(data),
        data,
        _config(max_epochs=1, checkpoint_every_minutes=1e-9, checkpoint_max_time_share=1e-9),
        seed=3,
        checkpoints=checkpoints,
    )
    # the first mid-epoch save (after step 1) stretches the interval past the run; then the
    # epoch-end save
    assert result.checkpoints_saved == 2
