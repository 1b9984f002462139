"""Train fefm-lab's DeepFEFM on the same encoded arrays and protocol as scripts/peer/deepctr_run.py.

Usage: .venv/bin/python scripts/bench_fefm_run.py SPEC.json
Same spec, same per-epoch permutation (numpy `default_rng(seed)`), same early stopping on the
validation log loss, same JSON line out; the step is fefm-lab's `Trainer.train_step` (XLA forward
and backward, row-sparse AdaGrad), with `l2_mode` taken from the spec.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from fefm_lab.features import DenseFeat, SparseFeat
from fefm_lab.model import build_model
from fefm_lab.training import Trainer, TrainerConfig, log_loss


def batches(sparse, dense, names, dense_names, labels, order, batch_size):
    """(features, labels) tensors for consecutive `batch_size` slices of `order`."""
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        block = sparse[rows]
        features = {name: tf.constant(block[:, i : i + 1]) for i, name in enumerate(names)}
        if dense_names:
            dense_block = dense[rows]
            features.update(
                {name: tf.constant(dense_block[:, i : i + 1]) for i, name in enumerate(dense_names)}
            )
        yield features, tf.constant(labels[rows].reshape(-1, 1))


def main(spec_path: str) -> None:
    with open(spec_path) as stream:
        spec = json.load(stream)
    seed = int(spec["seed"])
    keras.utils.set_random_seed(seed)
    tf.config.threading.set_intra_op_parallelism_threads(int(spec.get("threads", 0)))

    arrays = np.load(spec["npz"])
    names = [str(name) for name in arrays["sparse_names"]]
    dense_names = [str(name) for name in arrays["dense_names"]]
    vocabulary = [int(size) for size in arrays["vocabulary_sizes"]]
    split = {
        part: (arrays[f"sparse_{part}"], arrays[f"dense_{part}"], arrays[f"labels_{part}"])
        for part in ("train", "val", "test")
    }
    k = int(spec["embedding_dim"])
    batch_size = int(spec["batch_size"])
    config = TrainerConfig(
        learning_rate=spec["learning_rate"],
        batch_size=batch_size,
        eval_batch_size=int(spec["eval_batch_size"]),
        jit_compile=bool(spec.get("jit_compile", TrainerConfig.jit_compile)),
        verbose=False,
    )

    start = time.perf_counter()
    columns = [
        SparseFeat(name, vocabulary_size=size, embedding_dim=k)
        for name, size in zip(names, vocabulary, strict=True)
    ] + [DenseFeat(name, 1) for name in dense_names]
    model = build_model(
        "deepfefm",
        columns,
        columns,
        dnn_hidden_units=tuple(spec["dnn_hidden_units"]),
        l2_reg_linear=spec["l2_reg_linear"],
        l2_reg_embedding_feat=spec["l2_reg_embedding_feat"],
        l2_reg_embedding_field=spec["l2_reg_embedding_field"],
        l2_reg_dnn=spec["l2_reg_dnn"],
        dnn_dropout=spec["dnn_dropout"],
        seed=seed,
        l2_mode=spec["l2_mode"],
    )
    trainer = Trainer(model, config)
    built = time.perf_counter()

    def predict(part: str) -> np.ndarray:
        sparse, dense, labels = split[part]
        order = np.arange(len(labels))
        outputs = [
            trainer.predict_step(features).numpy().reshape(-1)
            for features, _ in batches(
                sparse, dense, names, dense_names, labels, order, config.eval_batch_size
            )
        ]
        return np.concatenate(outputs).astype(np.float64)

    step_ends: list[float] = []
    epoch_ends: list[int] = []
    sparse, dense, labels = split["train"]
    steps_per_epoch = spec.get("steps_per_epoch")
    rows_per_epoch = (
        len(labels) if steps_per_epoch is None else min(len(labels), steps_per_epoch * batch_size)
    )
    shuffler = np.random.default_rng(seed)
    best_loss, best_weights, waited, val_losses = float("inf"), None, 0, []
    for _ in range(int(spec["max_epochs"])):
        order = shuffler.permutation(len(labels))[:rows_per_epoch]
        for features, batch_labels in batches(
            sparse, dense, names, dense_names, labels, order, batch_size
        ):
            trainer.train_step(features, batch_labels).numpy()
            step_ends.append(time.perf_counter())
        epoch_ends.append(len(step_ends))
        if not spec.get("evaluate", True):
            continue
        val_loss = log_loss(split["val"][2], predict("val"))
        val_losses.append(val_loss)
        if best_loss - val_loss > spec["min_delta"]:
            best_loss, best_weights, waited = val_loss, model.get_weights(), 0
        else:
            waited += 1
            if waited >= spec["patience"]:
                break
    trained = time.perf_counter()

    result = {
        "implementation": f"fefm-lab (l2_mode={spec['l2_mode']})",
        "build_seconds": built - start,
        "ready_seconds": step_ends[0] - start,
        "step_ends": [end - start for end in step_ends],
        "epoch_step_counts": epoch_ends,
        "train_seconds": trained - built,
        "val_logloss": val_losses,
        "parameters": int(model.count_params()),
    }
    if spec.get("evaluate", True):
        model.set_weights(best_weights)
        np.save(spec["predictions_out"], predict("test"))
        result["predictions"] = spec["predictions_out"]
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
