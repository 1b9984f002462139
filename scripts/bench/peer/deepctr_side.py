"""Worker: DeepCTR 0.9.4's DeepFEFM under the peer protocol; runs in the reference venv (Keras 2).

Usage (from the repository root): .bench-peer-venv/bin/python -m scripts.bench.peer.deepctr_side
SPEC.json. Imports numpy, TensorFlow 2.15 and deepctr only (no fefm-lab in that venv). Each epoch
is one `model.fit` call over the protocol's permutation, unshuffled.
"""

from __future__ import annotations

import os
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from deepctr.feature_column import DenseFeat, SparseFeat
from deepctr.models import DeepFEFM

from scripts.bench.peer.protocol import (
    EncodedData,
    KerasWeights,
    feature_columns,
    main,
    model_arguments,
    step_clock,
)


class DeepCtrSide(KerasWeights):
    """The reference model, trained with Keras 2's `fit` one epoch at a time."""

    implementation = "deepctr"

    def __init__(self, spec: dict) -> None:
        tf.random.set_seed(int(spec["seed"]))
        tf.config.threading.set_intra_op_parallelism_threads(int(spec.get("threads", 0)))

    def build(self, spec: dict, data: EncodedData) -> None:
        self.data, self.spec = data, spec
        columns = feature_columns(data, int(spec["embedding_dim"]), SparseFeat, DenseFeat)
        self.model = DeepFEFM(columns, columns, **model_arguments(spec))
        self.model.compile(
            tf.keras.optimizers.Adagrad(learning_rate=spec["learning_rate"]),
            "binary_crossentropy",
        )

    def train_epoch(self, order: np.ndarray, step_ended: Callable[[], None]) -> None:
        self.model.fit(
            self.data.columns("train", order),
            self.data.labels["train"][order],
            batch_size=int(self.spec["batch_size"]),
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[step_clock(tf.keras.callbacks.Callback, step_ended)],
        )

    def predict(self, split: str) -> np.ndarray:
        predictions = self.model.predict(
            self.data.columns(split), batch_size=int(self.spec["eval_batch_size"]), verbose=0
        )
        return predictions.ravel().astype(np.float64)


if __name__ == "__main__":
    main(DeepCtrSide)
