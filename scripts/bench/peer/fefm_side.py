"""Worker: fefm-lab's DeepFEFM under the peer protocol (`scripts.bench.peer.protocol`).

Usage: python -m scripts.bench.peer.fefm_side SPEC.json
With `path` "trainer" (the default) the step is fefm-lab's `Trainer.train_step` (forward and
backward, then the row-sparse AdaGrad update), with `l2_mode` (and optionally `jit_compile`)
taken from the spec. With "fit-keras" or "fit-rowsparse" the model is used as a DeepCTR user
uses the reference: compiled with `keras.optimizers.Adagrad` or `fefm_lab.RowSparseAdagrad` (the
one-line change the builders' docs name) and trained with Keras's `model.fit`, one call per
epoch over the protocol's permutation, unshuffled, as `deepctr_side` does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from fefm_lab.features import DenseFeat, SparseFeat
from fefm_lab.model import build_model
from fefm_lab.training import Trainer, TrainerConfig
from fefm_lab.training.keras_optimizers import RowSparseAdagrad
from scripts.bench.peer import protocol

PATHS = ("trainer", "fit-keras", "fit-rowsparse")


class FefmLabSide(protocol.KerasWeights):
    """fefm-lab's model and step, fed batch by batch from the encoded arrays."""

    def __init__(self, spec: dict) -> None:
        keras.utils.set_random_seed(int(spec["seed"]))
        tf.config.threading.set_intra_op_parallelism_threads(int(spec.get("threads", 0)))
        self.path = spec.get("path", "trainer")
        if self.path not in PATHS:
            raise SystemExit(f"spec path must be one of {PATHS}, got {self.path!r}")
        self.implementation = f"fefm-lab (l2_mode={spec['l2_mode']}, {self.path})"

    def build(self, spec: dict, data: protocol.EncodedData) -> None:
        self.data = data
        self.config = TrainerConfig(
            learning_rate=spec["learning_rate"],
            batch_size=int(spec["batch_size"]),
            eval_batch_size=int(spec["eval_batch_size"]),
            jit_compile=bool(spec.get("jit_compile", TrainerConfig.jit_compile)),
            verbose=False,
        )
        columns = protocol.feature_columns(data, int(spec["embedding_dim"]), SparseFeat, DenseFeat)
        self.model = build_model(
            "deepfefm", columns, columns, **protocol.model_arguments(spec), l2_mode=spec["l2_mode"]
        )
        if self.path == "trainer":
            self.trainer = Trainer(self.model, self.config)
            return
        optimizer = (
            keras.optimizers.Adagrad(learning_rate=spec["learning_rate"])
            if self.path == "fit-keras"
            else RowSparseAdagrad(learning_rate=spec["learning_rate"])
        )
        self.model.compile(optimizer, "binary_crossentropy")

    def batches(self, split: str, order: np.ndarray, batch_size: int) -> Iterator[tuple]:
        """(features, labels) tensors for consecutive `batch_size` slices of `order`."""
        labels = self.data.labels[split]
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            features = {
                name: tf.constant(values) for name, values in self.data.columns(split, rows).items()
            }
            yield features, tf.constant(labels[rows].reshape(-1, 1))

    def train_epoch(self, order: np.ndarray, step_ended: Callable[[], None]) -> None:
        if self.path != "trainer":
            self.model.fit(
                self.data.columns("train", order),
                self.data.labels["train"][order],
                batch_size=self.config.batch_size,
                epochs=1,
                shuffle=False,
                verbose=0,
                callbacks=[protocol.step_clock(keras.callbacks.Callback, step_ended)],
            )
            return
        for features, labels in self.batches("train", order, self.config.batch_size):
            self.trainer.train_step(features, labels).numpy()
            step_ended()

    def predict(self, split: str) -> np.ndarray:
        if self.path != "trainer":
            predictions = self.model.predict(
                self.data.columns(split), batch_size=self.config.eval_batch_size, verbose=0
            )
            return predictions.ravel().astype(np.float64)
        order = np.arange(self.data.rows(split))
        outputs = [
            self.trainer.predict_step(features).numpy().reshape(-1)
            for features, _ in self.batches(split, order, self.config.eval_batch_size)
        ]
        return np.concatenate(outputs).astype(np.float64)


if __name__ == "__main__":
    protocol.main(FefmLabSide)
