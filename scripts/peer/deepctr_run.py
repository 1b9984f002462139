"""Train DeepCTR 0.9.4's DeepFEFM on encoded arrays; runs inside the reference venv (Keras 2).

Usage: python deepctr_run.py SPEC.json
SPEC names the .npz of encoded arrays (see scripts/bench_peer.py), the hyperparameters and the
seed. Prints one JSON line: build time, time to the first finished step, every step's end time,
the validation log loss per epoch, and where the test predictions were saved. Metrics on the test
predictions are computed by the caller, with the same code for both implementations.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from deepctr.feature_column import DenseFeat, SparseFeat
from deepctr.models import DeepFEFM


def log_loss(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Binary cross-entropy in float64 with predictions clipped away from 0 and 1."""
    p = np.clip(predictions.astype(np.float64).ravel(), 1e-7, 1 - 1e-7)
    y = labels.astype(np.float64).ravel()
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


class StepClock(tf.keras.callbacks.Callback):
    """Records the wall time at the end of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.ends.append(time.perf_counter())


def main(spec_path: str) -> None:
    with open(spec_path) as stream:
        spec = json.load(stream)
    seed = int(spec["seed"])
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    tf.config.threading.set_intra_op_parallelism_threads(int(spec.get("threads", 0)))

    arrays = np.load(spec["npz"])
    sparse_names = [str(name) for name in arrays["sparse_names"]]
    dense_names = [str(name) for name in arrays["dense_names"]]
    vocabulary = [int(size) for size in arrays["vocabulary_sizes"]]

    def inputs(split: str) -> dict[str, np.ndarray]:
        sparse = arrays[f"sparse_{split}"]
        dense = arrays[f"dense_{split}"]
        out = {name: sparse[:, i : i + 1] for i, name in enumerate(sparse_names)}
        out.update({name: dense[:, i : i + 1] for i, name in enumerate(dense_names)})
        return out

    x_train, y_train = inputs("train"), arrays["labels_train"]
    k = int(spec["embedding_dim"])
    batch_size = int(spec["batch_size"])

    start = time.perf_counter()
    columns = [
        SparseFeat(name, vocabulary_size=size, embedding_dim=k)
        for name, size in zip(sparse_names, vocabulary, strict=True)
    ] + [DenseFeat(name, 1) for name in dense_names]
    model = DeepFEFM(
        columns,
        columns,
        dnn_hidden_units=tuple(spec["dnn_hidden_units"]),
        l2_reg_linear=spec["l2_reg_linear"],
        l2_reg_embedding_feat=spec["l2_reg_embedding_feat"],
        l2_reg_embedding_field=spec["l2_reg_embedding_field"],
        l2_reg_dnn=spec["l2_reg_dnn"],
        dnn_dropout=spec["dnn_dropout"],
        seed=seed,
    )
    model.compile(
        tf.keras.optimizers.Adagrad(learning_rate=spec["learning_rate"]), "binary_crossentropy"
    )
    built = time.perf_counter()

    clock = StepClock()
    rows = len(y_train)
    steps_per_epoch = spec.get("steps_per_epoch")
    rows_per_epoch = rows if steps_per_epoch is None else min(rows, steps_per_epoch * batch_size)
    shuffler = np.random.default_rng(seed)
    best_loss, best_weights, waited, val_losses = float("inf"), None, 0, []
    epoch_ends: list[int] = []
    for _ in range(int(spec["max_epochs"])):
        order = shuffler.permutation(rows)[:rows_per_epoch]
        model.fit(
            {name: values[order] for name, values in x_train.items()},
            y_train[order],
            batch_size=batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[clock],
        )
        epoch_ends.append(len(clock.ends))
        if not spec.get("evaluate", True):
            continue
        val_loss = log_loss(
            arrays["labels_val"],
            model.predict(inputs("val"), batch_size=spec["eval_batch_size"], verbose=0),
        )
        val_losses.append(val_loss)
        if best_loss - val_loss > spec["min_delta"]:
            best_loss, best_weights, waited = val_loss, model.get_weights(), 0
        else:
            waited += 1
            if waited >= spec["patience"]:
                break
    trained = time.perf_counter()

    result = {
        "implementation": "deepctr",
        "build_seconds": built - start,
        "ready_seconds": clock.ends[0] - start,
        "step_ends": [end - start for end in clock.ends],
        "epoch_step_counts": epoch_ends,
        "train_seconds": trained - built,
        "val_logloss": val_losses,
        "parameters": int(model.count_params()),
    }
    if spec.get("evaluate", True):
        model.set_weights(best_weights)
        predictions = model.predict(inputs("test"), batch_size=spec["eval_batch_size"], verbose=0)
        np.save(spec["predictions_out"], predictions.ravel().astype(np.float64))
        result["predictions"] = spec["predictions_out"]
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
