"""The training loop: sparse-row updates, early stopping on validation log loss, exact metrics.

One step is `loss = BCE(y, p) + sum(model.losses)`; the forward and backward pass run in one
XLA-compiled function (when `jit_compile`), the row-sparse optimizer update in a plain graph
(XLA cannot compile the `unique` that sums repeated rows).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from fefm_lab.training.config import TrainerConfig
from fefm_lab.training.metrics import PROBABILITY_EPSILON, auc, log_loss
from fefm_lab.training.optimizer import RowSparseOptimizer

EpochCallback = Callable[[int, dict[str, float]], None]
PROGRESS_EVERY_SECONDS = 30.0


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainResult:
    """What one training run produced; metrics are exact, from every prediction of a split."""

    history: list[dict[str, float]]
    best_epoch: int
    best_val_logloss: float
    best_val_auc: float
    test_auc: float
    test_logloss: float
    train_seconds: float
    samples_per_second: float
    first_step_seconds: float
    steps: int
    num_params: int
    stopped_early: bool
    model: keras.Model = field(repr=False)


def binary_cross_entropy(labels: tf.Tensor, probabilities: tf.Tensor) -> tf.Tensor:
    """Mean -[y log p + (1 - y) log(1 - p)] with p clipped as Keras does (eps 1e-7)."""
    p = tf.clip_by_value(probabilities, PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
    y = tf.cast(labels, p.dtype)
    return -tf.reduce_mean(y * tf.math.log(p) + (1.0 - y) * tf.math.log1p(-p))


class Trainer:
    """Owns the compiled step functions and the optimizer state of one model."""

    def __init__(self, model: keras.Model, config: TrainerConfig) -> None:
        self.model = model
        self.config = config
        self.variables = list(model.trainable_variables)
        self.optimizer = RowSparseOptimizer(config.optimizer, config.learning_rate, self.variables)
        # Only the last batch of an epoch or split has another size: relax shapes, don't retrace.
        self._gradients = tf.function(
            self._loss_and_gradients, jit_compile=config.jit_compile, reduce_retracing=True
        )
        self.train_step = tf.function(self._train_step, reduce_retracing=True)
        self.predict_step = tf.function(
            self._predict, jit_compile=config.jit_compile, reduce_retracing=True
        )

    def _loss_and_gradients(self, features, labels):
        with tf.GradientTape() as tape:
            probabilities = self.model(features, training=True)
            data_loss = binary_cross_entropy(labels, probabilities)
            penalty = tf.add_n(self.model.losses) if self.model.losses else 0.0
            total = data_loss + tf.cast(penalty, data_loss.dtype)
        return data_loss, tape.gradient(total, self.variables)

    def _train_step(self, features, labels) -> tf.Tensor:
        data_loss, gradients = self._gradients(features, labels)
        self.optimizer.apply(gradients)
        return data_loss

    def _predict(self, features):
        return self.model(features, training=False)

    def predict(self, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
        """Labels and predicted probabilities of every row, in the dataset's order."""
        labels, predictions = [], []
        for features, batch_labels in dataset:
            predictions.append(self.predict_step(features).numpy().reshape(-1))
            labels.append(batch_labels.numpy().reshape(-1))
        if not labels:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        return np.concatenate(labels), np.concatenate(predictions)

    def evaluate(self, dataset: tf.data.Dataset) -> dict[str, float]:
        labels, predictions = self.predict(dataset)
        return {"logloss": log_loss(labels, predictions), "auc": auc(labels, predictions)}


def _log(config: TrainerConfig, message: str) -> None:
    if config.verbose:
        print(message, file=sys.stderr, flush=True)


def fit_and_evaluate(
    model: keras.Model,
    data,
    config: TrainerConfig,
    *,
    seed: int,
    on_epoch_end: EpochCallback | None = None,
) -> TrainResult:
    """Train `model` on `data` (a `PreparedData`), stop early on validation log loss, test once.

    Early stopping follows the paper: an epoch improves when validation log loss drops by more
    than `min_delta`; after `patience` epochs without improvement training stops, and with
    `restore_best` the best epoch's weights are the ones tested.
    """
    from fefm_lab.data.input import eval_dataset, train_dataset

    keras.utils.set_random_seed(seed)
    trainer = Trainer(model, config)
    validation = eval_dataset(data, "validation", config.eval_batch_size)

    history: list[dict[str, float]] = []
    best = {"epoch": 0, "logloss": math.inf, "auc": math.nan}
    best_weights = None
    epochs_without_gain = 0
    train_seconds = 0.0
    samples = 0
    steps = 0
    first_step_seconds = math.nan
    fit_start = time.perf_counter()
    stopped_early = False

    for epoch in range(1, config.max_epochs + 1):
        epoch_start = time.perf_counter()
        last_progress = epoch_start
        loss_sum, loss_batches, epoch_samples = 0.0, 0, 0
        # The epoch is explicit so the order depends only on (seed, epoch), never on earlier fits.
        train_batches = train_dataset(data, config.batch_size, seed, epoch=epoch - 1)
        if config.steps_per_epoch is not None:
            train_batches = train_batches.take(config.steps_per_epoch)
        for features, labels in train_batches:
            batch_loss = trainer.train_step(features, labels)
            if steps == 0:
                batch_loss.numpy()  # wait for the first step to finish before timing it
                first_step_seconds = time.perf_counter() - fit_start
            loss_sum += batch_loss
            loss_batches += 1
            steps += 1
            epoch_samples += int(labels.shape[0])
            now = time.perf_counter()
            if now - last_progress > PROGRESS_EVERY_SECONDS:
                rate = epoch_samples / (now - epoch_start)
                _log(config, f"  epoch {epoch}: {epoch_samples:,} samples, {rate:,.0f} samples/s")
                last_progress = now
        epoch_train_seconds = time.perf_counter() - epoch_start
        train_seconds += epoch_train_seconds
        samples += epoch_samples
        train_logloss = float(loss_sum) / max(loss_batches, 1)
        if not math.isfinite(train_logloss):
            raise TrainingDiverged(
                f"training loss became {train_logloss} in epoch {epoch} "
                f"(learning rate {config.learning_rate}, optimizer {config.optimizer})"
            )
        val = trainer.evaluate(validation)
        record = {
            "epoch": epoch,
            "train_logloss": train_logloss,
            "val_logloss": val["logloss"],
            "val_auc": val["auc"],
            "seconds": time.perf_counter() - epoch_start,
            "samples_per_second": epoch_samples / max(epoch_train_seconds, 1e-9),
        }
        history.append(record)
        _log(
            config,
            f"epoch {epoch}: train logloss {train_logloss:.5f}, val logloss {val['logloss']:.5f}, "
            f"val AUC {val['auc']:.5f} ({record['seconds']:.1f} s, "
            f"{record['samples_per_second']:,.0f} samples/s)",
        )
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
        if val["logloss"] < best["logloss"] - config.early_stopping.min_delta:
            best = {"epoch": epoch, "logloss": val["logloss"], "auc": val["auc"]}
            epochs_without_gain = 0
            if config.early_stopping.restore_best:
                best_weights = [np.array(w) for w in model.get_weights()]
        else:
            epochs_without_gain += 1
            if epochs_without_gain >= config.early_stopping.patience:
                stopped_early = epoch < config.max_epochs
                _log(config, f"early stop after epoch {epoch}: best epoch {best['epoch']}")
                break

    if best_weights is not None and best["epoch"] != history[-1]["epoch"]:
        model.set_weights(best_weights)
    test = trainer.evaluate(eval_dataset(data, "test", config.eval_batch_size))
    return TrainResult(
        history=history,
        best_epoch=int(best["epoch"]),
        best_val_logloss=float(best["logloss"]),
        best_val_auc=float(best["auc"]),
        test_auc=test["auc"],
        test_logloss=test["logloss"],
        train_seconds=train_seconds,
        samples_per_second=samples / max(train_seconds, 1e-9),
        first_step_seconds=first_step_seconds,
        steps=steps,
        num_params=int(model.count_params()),
        stopped_early=stopped_early,
        model=model,
    )
