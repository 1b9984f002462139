"""The training loop: sparse-row updates, early stopping on validation log loss (or AUC), exact
metrics.

One step is `loss = BCE(y, p) + sum(model.losses)`; the forward and backward pass run in one
XLA-compiled function (when `jit_compile`), the row-sparse optimizer update in a plain graph
(XLA cannot compile the `unique` that sums repeated rows).

For long runs the loop saves checkpoints (every epoch end and every `checkpoint_every_minutes`),
continues exactly from one (`resume=`), stops gracefully on SIGTERM/SIGINT (`stop=`: checkpoint,
then `TrainingStopped`), shows progress, and reports the train log loss every `log_every_steps`
steps (`on_steps=`). A resumed run makes the same steps on the same batches from the same state
as an uninterrupted one, so it ends with the same weights and metrics, bit for bit.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from fefm_lab.config.trainer import TrainerConfig
from fefm_lab.progress import EpochProgress, make_progress
from fefm_lab.training import divergence
from fefm_lab.training.checkpoint import CheckpointDirectory, Position, TrainingState
from fefm_lab.training.divergence import TrainingDiverged
from fefm_lab.training.metrics import PROBABILITY_EPSILON, auc, log_loss
from fefm_lab.training.optimizer import RowSparseOptimizer
from fefm_lab.training.signals import StopSignals, TrainingStopped

LOG = logging.getLogger(__name__)
# (epoch, its record) -> True to stop training after this epoch (a pruned tuning trial)
EpochCallback = Callable[[int, dict[str, float]], bool | None]
# (global step, {"train_logloss": mean over the last steps, "samples_per_second": ...})
StepsCallback = Callable[[int, dict[str, float]], None]


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
    checkpoints_saved: int = 0
    checkpoint_seconds: float = 0.0
    resumed_from: str = ""  # where the run continued from ("" = a fresh start)
    cpu_seconds: float = 0.0  # process CPU time of training and testing, over every start


def binary_cross_entropy(labels: tf.Tensor, probabilities: tf.Tensor) -> tf.Tensor:
    """Mean -[y log p + (1 - y) log(1 - p)] with p clipped as Keras does (eps 1e-7)."""
    p = tf.clip_by_value(probabilities, PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
    y = tf.cast(labels, p.dtype)
    return -tf.reduce_mean(y * tf.math.log(p) + (1.0 - y) * tf.math.log1p(-p))


class ByBatchSize:
    """`function` as two graphs: one traced for batches of `rows` rows, one for any other
    number of rows (traced with the batch dimension unknown), whatever the order of the calls.

    Grappler's arithmetic optimizer rewrites a graph whose shapes it knows differently from one
    whose batch dimension is unknown, so the two give float results that differ in the last
    bits. `tf.function(reduce_retracing=True)` traces its first shape exactly and every later
    one relaxed: which graph ran a batch depended on the batches before it, and a run resumed
    where its first call was a short batch (an epoch's last, a split smaller than the batch)
    did not end with an uninterrupted run's numbers. Here a batch of `rows` rows always runs
    the exact graph and any other batch the relaxed one: what `reduce_retracing` gave a run
    whose first batch was a whole one, so such runs keep their numbers.
    """

    def __init__(self, function: Callable, rows: int, **options) -> None:
        self.rows = rows
        self.full = tf.function(function, **options)
        self.other = tf.function(function, **options)
        self._relaxed: Callable | None = None

    def _pick(self, args: tuple) -> Callable:
        if tf.nest.flatten(args)[0].shape[0] == self.rows:
            return self.full
        if self._relaxed is None:
            self._relaxed = self.other.get_concrete_function(*_any_rows(args))
        return self._relaxed

    def __call__(self, *args):
        return self._pick(args)(*args)

    def get_concrete_function(self, *args):
        """The graph that runs `args`."""
        picked = self._pick(args)
        return picked.get_concrete_function(*args) if picked is self.full else picked

    def experimental_get_tracing_count(self) -> int:
        return self.full.experimental_get_tracing_count() + (self._relaxed is not None)


def _any_rows(args: tuple) -> tuple:
    """The specs of `args` with the batch dimension unknown."""
    return tf.nest.map_structure(lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), args)


class Trainer:
    """Owns the compiled step functions and the optimizer state of one model."""

    def __init__(self, model: keras.Model, config: TrainerConfig) -> None:
        self.model = model
        self.config = config
        self.variables = list(model.trainable_variables)
        self.optimizer = RowSparseOptimizer(config.optimizer, config.learning_rate, self.variables)
        # Each function wraps a partial of this trainer, not the method: TensorFlow counts
        # traces per code object (a method's or a lambda's is shared by every trainer), so the
        # traces of every job a sweep runs in one process added up to "N out of the last M
        # calls ... triggered tf.function retracing". A partial has no code object of its own.
        jit = config.jit_compile
        gradients = functools.partial(Trainer._loss_and_gradients, self)
        self._gradients = ByBatchSize(gradients, config.batch_size, jit_compile=jit)
        train_step = functools.partial(Trainer._train_step, self)
        self.train_step = ByBatchSize(train_step, config.batch_size)
        predict = functools.partial(Trainer._predict, self)
        self.predict_step = ByBatchSize(predict, config.eval_batch_size, jit_compile=jit)

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

    def predict(
        self, dataset: tf.data.Dataset, stop: StopSignals | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Labels and predicted probabilities of every row, in the dataset's order.

        With `stop`, a pending stop signal ends the pass between batches (TrainingStopped).
        """
        labels, predictions = [], []
        for features, batch_labels in dataset:
            if stop is not None:
                stop.check()
            predictions.append(self.predict_step(features).numpy().reshape(-1))
            labels.append(batch_labels.numpy().reshape(-1))
        if not labels:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        return np.concatenate(labels), np.concatenate(predictions)

    def evaluate(
        self,
        dataset: tf.data.Dataset,
        stop: StopSignals | None = None,
        train_click_rate: float | None = None,
    ) -> dict:
        """Exact log loss and AUC; with `train_click_rate`, also `signals`: the divergence
        check's numbers (`divergence.validation_signals`)."""
        labels, predictions = self.predict(dataset, stop)
        metrics = {"logloss": log_loss(labels, predictions), "auc": auc(labels, predictions)}
        if train_click_rate is not None:
            metrics["signals"] = divergence.validation_signals(
                labels, predictions, train_click_rate
            )
        return metrics

    # ------------------------------------------------------------ state for checkpoints

    def variable_names(self) -> list[str]:
        return [v.path for v in self.model.variables]

    def mismatch(self, state: TrainingState) -> str | None:
        """Why `state` cannot be loaded into this model and optimizer (None: it can)."""
        # Shapes, not names: Keras numbers layer names per process (seed_generator_1, ...).
        variables = self.model.variables
        if len(state.model) != len(variables):
            return f"it holds {len(state.model)} model variables, this model {len(variables)}"
        for variable, array in zip(variables, state.model, strict=True):
            if tuple(variable.shape) != array.shape:
                return f"variable {variable.path} has shape {array.shape}, not {variable.shape}"
        slots = self.optimizer.state_variables
        if len(slots) != len(state.optimizer) or any(
            tuple(v.shape) != a.shape for v, a in zip(slots, state.optimizer, strict=True)
        ):
            return f"its optimizer state does not fit a {self.optimizer.kind} optimizer here"
        return None

    def restore(self, state: TrainingState) -> None:
        """Load model and optimizer variables from a checkpoint (see `mismatch` first)."""
        problem = self.mismatch(state)
        if problem is not None:
            raise ValueError(f"checkpoint does not fit: {problem}")
        for variable, array in zip(self.model.variables, state.model, strict=True):
            variable.assign(array)
        for variable, array in zip(self.optimizer.state_variables, state.optimizer, strict=True):
            variable.assign(array)


def _log(config: TrainerConfig, message: str) -> None:
    if config.verbose:
        print(message, file=sys.stderr, flush=True)


def batches_per_epoch(train_rows: int, config: TrainerConfig) -> int:
    """ceil(rows / batch_size) (only the last batch is smaller), capped by steps_per_epoch."""
    batches = -(-train_rows // config.batch_size)
    return batches if config.steps_per_epoch is None else min(batches, config.steps_per_epoch)


class _Fit:
    """One call of `fit_and_evaluate`: the position, the timers and the checkpoint writer."""

    def __init__(
        self,
        trainer: Trainer,
        data,
        config: TrainerConfig,
        seed: int,
        checkpoints: CheckpointDirectory | None,
        run_id: str,
        stop: StopSignals | None,
        progress: EpochProgress,
    ) -> None:
        self.trainer = trainer
        self.data = data
        self.config = config
        self.seed = seed
        self.checkpoints = checkpoints
        self.run_id = run_id
        self.stop = stop
        self.progress = progress
        self.train_click_rate = data.positives("train") / max(data.rows("train"), 1)
        self.position = Position()
        self.best_weights: list[np.ndarray] | None = None
        self.loss_sum: tf.Tensor | float = 0.0
        self.segment_start = time.perf_counter()
        interval = config.checkpoint_every_minutes
        self.base_interval = math.inf if interval is None else 60.0 * interval
        self.checkpoint_interval = self.base_interval
        self.last_checkpoint = time.perf_counter()
        self.checkpoints_saved = 0
        self.checkpoint_seconds = 0.0
        self.cpu_start = time.process_time()
        self.cpu_before = 0.0  # the CPU time of the run's earlier starts

    def resume(self, state: TrainingState) -> None:
        self.trainer.restore(state)
        self.position = copy.deepcopy(state.position)
        self.cpu_before = state.position.cpu_seconds
        self.best_weights = state.best
        self.loss_sum = (
            tf.constant(self.position.loss_sum, tf.float32) if self.position.loss_batches else 0.0
        )

    def flush_time(self) -> None:
        """Move the time since the last flush into `position.train_seconds`."""
        now = time.perf_counter()
        self.position.train_seconds += now - self.segment_start
        self.position.epoch_seconds += now - self.segment_start
        self.segment_start = now

    def cpu_seconds(self) -> float:
        """Process CPU time of this run so far, its earlier starts included."""
        return self.cpu_before + time.process_time() - self.cpu_start

    def save(self) -> str:
        """Write a checkpoint of the current position (no-op without a checkpoint directory)."""
        if self.checkpoints is None:
            return "no checkpoint directory: nothing saved"
        started = time.perf_counter()
        self.position.loss_sum = float(self.loss_sum)
        self.position.cpu_seconds = self.cpu_seconds()
        state = TrainingState(
            position=copy.deepcopy(self.position),
            model=list(self.trainer.model.variables),
            optimizer=list(self.trainer.optimizer.state_variables),
            best=self.best_weights,
            variable_names=self.trainer.variable_names(),
            run_id=self.run_id,
        )
        path = self.checkpoints.save(state)
        seconds = time.perf_counter() - started
        self.checkpoints_saved += 1
        self.checkpoint_seconds += seconds
        self.last_checkpoint = time.perf_counter()
        share = self.config.checkpoint_max_time_share
        if share is not None:  # a slow disk spaces the saves out; a fast one keeps the setting
            self.checkpoint_interval = max(self.base_interval, seconds / share)
        return f"checkpoint at {state.describe()} saved to {path}"

    def stop_now(self) -> None:
        """Save and raise TrainingStopped if a stop signal is pending."""
        if self.stop is not None and self.stop.requested is not None:
            self.flush_time()
            self.stop.check(self.save())

    def train_epoch(self, on_steps: StepsCallback | None) -> None:
        """Apply the epoch's remaining batches, from `position.batches_done` on."""
        from fefm_lab.data.input import train_dataset

        config, position = self.config, self.position
        total = batches_per_epoch(self.data.rows("train"), config)
        # The order depends only on (seed, epoch): skipping the batches done gives the rest.
        batches = train_dataset(self.data, config.batch_size, self.seed, epoch=position.epoch - 1)
        if config.steps_per_epoch is not None:
            batches = batches.take(config.steps_per_epoch)
        if position.batches_done:
            batches = batches.skip(position.batches_done)
        self.progress.start(position.epoch, config.max_epochs, total, position.batches_done)
        window_sum, window_steps, window_samples = 0.0, 0, 0
        window_start = time.perf_counter()
        new_samples = 0
        fit_start = time.perf_counter()
        for features, labels in batches:
            batch_loss = self.trainer.train_step(features, labels)
            if position.steps == 0:
                batch_loss.numpy()  # wait for the first step to finish before timing it
                position.first_step_seconds = time.perf_counter() - fit_start
            self.loss_sum += batch_loss
            window_sum += batch_loss
            window_steps += 1
            position.loss_batches += 1
            position.batches_done += 1
            position.steps += 1
            samples = int(labels.shape[0])
            position.epoch_samples += samples
            new_samples += samples
            window_samples += samples
            if position.steps % config.log_every_steps == 0:
                now = time.perf_counter()
                if on_steps is not None:
                    on_steps(
                        position.steps,
                        {
                            "train_logloss": float(window_sum) / window_steps,
                            "samples_per_second": window_samples / max(now - window_start, 1e-9),
                        },
                    )
                window_sum, window_steps, window_samples, window_start = 0.0, 0, 0, now
            self.stop_now()
            self.progress.update(
                position.batches_done, new_samples, float(self.loss_sum) / position.loss_batches
            )
            if time.perf_counter() - self.last_checkpoint >= self.checkpoint_interval:
                self.flush_time()
                self.save()
        self.flush_time()
        self.progress.finish()


def fit_and_evaluate(
    model: keras.Model,
    data,
    config: TrainerConfig,
    *,
    seed: int,
    on_epoch_end: EpochCallback | None = None,
    on_steps: StepsCallback | None = None,
    checkpoints: CheckpointDirectory | None = None,
    run_id: str = "",
    resume: TrainingState | None = None,
    stop: StopSignals | None = None,
) -> TrainResult:
    """Train `model` on `data` (a `PreparedData`), stop early on validation log loss, test once.

    Early stopping follows the paper: an epoch improves when validation log loss drops by more
    than `min_delta` (with `monitor=val_auc`, as the open benchmark: when validation AUC rises by
    more than `min_delta`); after `patience` epochs without improvement training stops, and with
    `restore_best` the best epoch's weights are the ones tested.

    `checkpoints`: where to save (tagged with `run_id`); `resume`: a checkpoint to continue from
    (its history is not replayed through `on_epoch_end`); `stop`: the job's stop signals.
    `on_epoch_end` returning True ends training after that epoch (a pruned tuning trial).
    """
    from fefm_lab.data.input import eval_dataset

    keras.utils.set_random_seed(seed)
    trainer = Trainer(model, config)
    progress = make_progress(config.progress, config.verbose, config.progress_every_seconds)
    fit = _Fit(trainer, data, config, seed, checkpoints, run_id, stop, progress)
    resumed_from = ""
    problem = trainer.mismatch(resume) if resume is not None else None
    if problem is not None:
        LOG.warning("ignoring the checkpoint: %s; training starts over", problem)
        resume = None
    if resume is not None:
        fit.resume(resume)
        resumed_from = resume.describe()
        _log(config, f"resuming from the checkpoint at {resumed_from}")
    position = fit.position
    validation = eval_dataset(data, "validation", config.eval_batch_size)

    with stop.deferred() if stop is not None else nullcontext():
        try:
            stopped_by_caller = False
            while not position.training_done:
                fit.train_epoch(on_steps)
                stopped_by_caller = _end_epoch(fit, validation, on_epoch_end)
        finally:
            progress.close()

    history = position.history
    if fit.best_weights is not None and position.best_epoch != history[-1]["epoch"]:
        model.set_weights(fit.best_weights)
    tested = position.best_epoch if fit.best_weights is not None else history[-1]["epoch"]
    if not stopped_by_caller:  # a pruned trial was stopped while still poor: not a failure
        divergence.check_tested_epoch(history, tested, fit.train_click_rate)
    test = trainer.evaluate(eval_dataset(data, "test", config.eval_batch_size))
    return TrainResult(
        history=history,
        best_epoch=int(position.best_epoch),
        best_val_logloss=float(position.best_logloss),
        best_val_auc=float(position.best_auc),
        test_auc=test["auc"],
        test_logloss=test["logloss"],
        train_seconds=position.train_seconds,
        samples_per_second=position.samples / max(position.train_seconds, 1e-9),
        first_step_seconds=position.first_step_seconds,
        steps=position.steps,
        num_params=int(model.count_params()),
        stopped_early=position.stopped_early,
        model=model,
        checkpoints_saved=fit.checkpoints_saved,
        checkpoint_seconds=fit.checkpoint_seconds,
        resumed_from=resumed_from,
        cpu_seconds=fit.cpu_seconds(),
    )


def _improved(monitor: str, min_delta: float, val: dict, position: Position) -> bool:
    """Whether this epoch's validation beats the best so far by more than `min_delta`."""
    if monitor == "val_auc":
        first = position.best_epoch == 0 and math.isfinite(val["auc"])
        return first or val["auc"] > position.best_auc + min_delta
    return val["logloss"] < position.best_logloss - min_delta


def _end_epoch(fit: _Fit, validation: tf.data.Dataset, on_epoch_end: EpochCallback | None) -> bool:
    """Validate, update early stopping, move to the next epoch, save, then report the epoch;
    whether `on_epoch_end` stopped training."""
    config, position, trainer = fit.config, fit.position, fit.trainer
    epoch = position.epoch
    train_logloss = float(fit.loss_sum) / max(position.loss_batches, 1)
    if not math.isfinite(train_logloss):
        raise TrainingDiverged(
            f"training loss became {train_logloss} in epoch {epoch} "
            f"(learning rate {config.learning_rate}, optimizer {config.optimizer})"
        )
    started = time.perf_counter()
    try:
        val = trainer.evaluate(validation, fit.stop, fit.train_click_rate)
    except TrainingStopped:
        fit.stop_now()  # the epoch's batches are done: the checkpoint says so
        raise
    epoch_seconds = position.epoch_seconds
    record = {
        "epoch": epoch,
        "train_logloss": train_logloss,
        "val_logloss": val["logloss"],
        "val_auc": val["auc"],
        **val["signals"],
        "seconds": epoch_seconds + time.perf_counter() - started,
        "samples_per_second": position.epoch_samples / max(epoch_seconds, 1e-9),
    }
    position.history.append(record)
    position.samples += position.epoch_samples
    _log(
        config,
        f"epoch {epoch}: train logloss {train_logloss:.5f}, val logloss {val['logloss']:.5f}, "
        f"val AUC {val['auc']:.5f} ({record['seconds']:.1f} s, "
        f"{record['samples_per_second']:,.0f} samples/s)",
    )
    stopping = config.early_stopping
    if _improved(stopping.monitor, stopping.min_delta, val, position):
        position.best_epoch, position.best_logloss, position.best_auc = (
            epoch,
            val["logloss"],
            val["auc"],
        )
        position.epochs_without_gain = 0
        if stopping.restore_best:
            fit.best_weights = [np.array(w) for w in trainer.model.get_weights()]
    else:
        position.epochs_without_gain += 1
        if position.epochs_without_gain >= stopping.patience:
            position.stopped_early = epoch < config.max_epochs
            position.training_done = True
            _log(config, f"early stop after epoch {epoch}: best epoch {position.best_epoch}")
    position.epoch += 1
    position.batches_done = position.loss_batches = position.epoch_samples = 0
    position.epoch_seconds = 0.0
    fit.loss_sum = 0.0
    if position.epoch > config.max_epochs:
        position.training_done = True
    saved = fit.save()
    stopped = bool(on_epoch_end is not None and on_epoch_end(epoch, record))
    if stopped:
        position.training_done = True
        _log(config, f"stopped after epoch {epoch}: the tuning study pruned the trial")
    if fit.stop is not None:
        fit.stop.check(saved)
    return stopped
