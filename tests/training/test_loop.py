"""The training loop on a small prepared dataset with one planted field-pair interaction."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from planted_data import prepare_planted

from fefm_lab.config.trainer import EarlyStopping
from fefm_lab.data.input import eval_dataset
from fefm_lab.model import build_model
from fefm_lab.training import Trainer, TrainerConfig, TrainingDiverged, fit_and_evaluate

FIELDS = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    """6,000 rows; the click depends on whether fields a and b carry the same value (mod 2)."""
    return prepare_planted(
        tmp_path_factory.mktemp("loop"),
        name="planted",
        fields=FIELDS,
        rows=6000,
        values_per_field=8,
        seed=3,
        logit=lambda v: -1.2 + 2.4 * ((v[:, 0] + v[:, 1]) % 2 == 0) - 0.3 * (v[:, 2] > 4),
    )


def _model(data, seed: int = 1):
    linear, dnn = data.feature_columns(4)
    return build_model("fefm", linear, dnn, seed=seed, l2_reg_embedding_feat=0.0)


def _config(**overrides) -> TrainerConfig:
    values = {
        "optimizer": "adam",
        "learning_rate": 0.03,
        "batch_size": 256,
        "max_epochs": 4,
        "verbose": False,
    }
    values.update(overrides)
    return TrainerConfig(**values)


def test_fit_learns_the_planted_pair_and_tests_the_best_epoch(planted) -> None:
    result = fit_and_evaluate(_model(planted), planted, _config(), seed=5)
    assert result.test_auc > 0.75
    assert [h["epoch"] for h in result.history] == list(range(1, len(result.history) + 1))
    val_losses = [h["val_logloss"] for h in result.history]
    assert result.best_epoch == int(np.argmin(val_losses)) + 1
    assert result.best_val_logloss == pytest.approx(min(val_losses), abs=0)
    # the weights tested are the best epoch's: validation re-evaluates to the recorded best
    trainer = Trainer(result.model, _config())
    again = trainer.evaluate(eval_dataset(planted, "validation", 1000))
    assert again["logloss"] == pytest.approx(result.best_val_logloss, rel=1e-6)
    assert result.num_params == result.model.count_params()
    assert result.steps == len(result.history) * int(np.ceil(planted.rows("train") / 256))


def test_same_seed_reproduces_the_run_exactly_and_another_seed_differs(planted) -> None:
    first = fit_and_evaluate(_model(planted, seed=7), planted, _config(max_epochs=2), seed=7)
    second = fit_and_evaluate(_model(planted, seed=7), planted, _config(max_epochs=2), seed=7)
    other = fit_and_evaluate(_model(planted, seed=8), planted, _config(max_epochs=2), seed=8)
    assert first.test_logloss == second.test_logloss
    for a, b in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert other.test_logloss != first.test_logloss


def test_early_stopping_counts_patience_from_the_best_epoch(planted) -> None:
    # epoch 1 improves on infinity; no later epoch can improve by 10 nats: stop after 1 + patience
    config = _config(max_epochs=6, early_stopping=EarlyStopping(min_delta=10.0, patience=2))
    result = fit_and_evaluate(_model(planted), planted, config, seed=1)
    assert len(result.history) == 3
    assert result.best_epoch == 1 and result.stopped_early


def test_early_stopping_on_validation_auc_keeps_the_best_auc_epoch(planted) -> None:
    # the open benchmark's rule: the best epoch is the highest validation AUC, whatever the
    # log loss does; min_delta 0 counts any rise
    config = _config(
        max_epochs=5, early_stopping=EarlyStopping(monitor="val_auc", min_delta=0.0, patience=1)
    )
    result = fit_and_evaluate(_model(planted), planted, config, seed=2)
    aucs = [h["val_auc"] for h in result.history]
    best = int(np.argmax(aucs)) + 1
    assert result.best_epoch == best
    assert result.best_val_auc == pytest.approx(max(aucs), abs=0)
    # patience 1: it ran one epoch past the best, unless the cap came first
    assert len(result.history) == min(best + 1, 5)
    assert result.stopped_early == (len(result.history) < 5)


def test_early_stopping_on_auc_by_min_delta(planted) -> None:
    # no AUC can rise by 1: epoch 1 is the best and patience 2 ends the run after epoch 3
    config = _config(
        max_epochs=6, early_stopping=EarlyStopping(monitor="val_auc", min_delta=1.0, patience=2)
    )
    result = fit_and_evaluate(_model(planted), planted, config, seed=1)
    assert len(result.history) == 3
    assert result.best_epoch == 1 and result.stopped_early


def test_steps_per_epoch_caps_each_epoch(planted) -> None:
    result = fit_and_evaluate(
        _model(planted), planted, _config(max_epochs=2, steps_per_epoch=3), seed=1
    )
    assert result.steps == 6


def test_non_finite_loss_raises_training_diverged(planted) -> None:
    model = _model(planted)
    weights = model.get_weights()
    weights[0] = np.full_like(weights[0], np.nan)
    model.set_weights(weights)
    with pytest.raises(TrainingDiverged, match="training loss became nan in epoch 1"):
        fit_and_evaluate(model, planted, _config(max_epochs=1), seed=1)


def test_adagrad_without_jit_trains_too(planted) -> None:
    result = fit_and_evaluate(
        _model(planted),
        planted,
        _config(optimizer="adagrad", learning_rate=1.0, jit_compile=False, max_epochs=4),
        seed=2,
    )
    assert result.test_auc > 0.7


def test_first_step_time_is_recorded(planted, tmp_path: Path) -> None:
    started = time.perf_counter()
    result = fit_and_evaluate(_model(planted), planted, _config(max_epochs=1), seed=1)
    elapsed = time.perf_counter() - started
    # the first step is inside the call, and includes tracing: slower than the epoch's mean step
    assert 0 < result.first_step_seconds < elapsed
    assert result.first_step_seconds > result.train_seconds / result.steps
    assert result.steps == -(-planted.rows("train") // 256)
    assert result.samples_per_second == pytest.approx(planted.rows("train") / result.train_seconds)


def test_trainers_of_a_sweep_do_not_retrace_per_call(planted, caplog) -> None:
    """Jobs of a sweep in one process each build a Trainer: TensorFlow counted their traces
    together ("N out of the last M calls to Trainer._predict triggered tf.function
    retracing"); each trainer's predict now traces twice: batches of `eval_batch_size` rows,
    and any other number of rows."""
    import logging

    caplog.set_level(logging.WARNING)
    batch_sizes = (1000, 700, 300)  # 1,199 test rows: last batches of 199, 499 and 299
    for seed in range(6):
        trainer = Trainer(_model(planted, seed=seed), _config(eval_batch_size=1000))
        for batch in batch_sizes:
            trainer.predict(eval_dataset(planted, "test", batch))
        assert trainer.predict_step.experimental_get_tracing_count() == 2
    assert "retracing" not in caplog.text
