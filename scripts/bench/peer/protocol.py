"""The peer benchmark's protocol, the one copy both sides run (numpy and the standard library only).

The comparison is fair only while both implementations see the same thing, so everything but
the model lives here: the spec's keys, the keywords both builders get, the encoded arrays, the
per-epoch permutation (numpy `default_rng(seed)`), the early stopping on the validation log loss
(best weights restored), the clock (model construction to first finished step, every step's end)
and the JSON line printed for the driver. A side supplies a model through `Side`; its worker
calls `main(make_side)`.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

# Every key a spec carries (the driver fills them; `predictions_out` only when `evaluate`).
SPEC_KEYS = (
    "npz", "seed", "embedding_dim", "dnn_hidden_units", "dnn_dropout",
    "l2_reg_linear", "l2_reg_embedding_feat", "l2_reg_embedding_field", "l2_reg_dnn",
    "learning_rate", "batch_size", "eval_batch_size", "min_delta", "patience",
    "max_epochs", "steps_per_epoch", "evaluate", "l2_mode",
)  # fmt: skip
SPLITS = ("train", "val", "test")
PROBABILITY_EPSILON = 1e-7


@dataclass(frozen=True)
class EncodedData:
    """Encoded splits as both sides read them: sparse ids, dense values, labels per split.

    `sparse[split]` int32 (rows, sparse fields), `dense[split]` float32 (rows, dense fields),
    `labels[split]` float32 (rows,); one .npz holds them (`save` / `load`).
    """

    sparse_names: list[str]
    dense_names: list[str]
    vocabulary_sizes: list[int]
    sparse: dict[str, np.ndarray]
    dense: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]

    def save(self, path: Path) -> None:
        arrays = {
            "sparse_names": np.array(self.sparse_names, dtype=str),
            "dense_names": np.array(self.dense_names, dtype=str),
            "vocabulary_sizes": np.array(self.vocabulary_sizes, dtype=np.int64),
        }
        for split in SPLITS:
            arrays[f"sparse_{split}"] = self.sparse[split].astype(np.int32)
            arrays[f"dense_{split}"] = self.dense[split].astype(np.float32)
            arrays[f"labels_{split}"] = self.labels[split].astype(np.float32)
        with open(path, "wb") as stream:
            np.savez(stream, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> EncodedData:
        arrays = np.load(path)
        return cls(
            sparse_names=[str(name) for name in arrays["sparse_names"]],
            dense_names=[str(name) for name in arrays["dense_names"]],
            vocabulary_sizes=[int(size) for size in arrays["vocabulary_sizes"]],
            sparse={split: arrays[f"sparse_{split}"] for split in SPLITS},
            dense={split: arrays[f"dense_{split}"] for split in SPLITS},
            labels={split: arrays[f"labels_{split}"] for split in SPLITS},
        )

    def rows(self, split: str) -> int:
        return len(self.labels[split])

    def columns(self, split: str, order: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """One (rows, 1) array per input name, rows in `order` (all rows when None)."""
        sparse, dense = self.sparse[split], self.dense[split]
        if order is not None:
            sparse, dense = sparse[order], dense[order]
        out = {
            name: np.ascontiguousarray(sparse[:, i : i + 1])
            for i, name in enumerate(self.sparse_names)
        }
        out.update(
            {
                name: np.ascontiguousarray(dense[:, i : i + 1])
                for i, name in enumerate(self.dense_names)
            }
        )
        return out


def feature_columns(data: EncodedData, k: int, sparse_feat: type, dense_feat: type) -> list:
    """The model's input columns, built with a side's own `SparseFeat` / `DenseFeat` classes
    (fefm-lab's mirror DeepCTR's signatures): k-dim embeddings, one value per dense field."""
    return [
        sparse_feat(name, vocabulary_size=size, embedding_dim=k)
        for name, size in zip(data.sparse_names, data.vocabulary_sizes, strict=True)
    ] + [dense_feat(name, 1) for name in data.dense_names]


def model_arguments(spec: dict) -> dict:
    """The keyword arguments both DeepFEFM builders receive: the same shape, L2, dropout, seed."""
    return {
        "dnn_hidden_units": tuple(spec["dnn_hidden_units"]),
        "l2_reg_linear": spec["l2_reg_linear"],
        "l2_reg_embedding_feat": spec["l2_reg_embedding_feat"],
        "l2_reg_embedding_field": spec["l2_reg_embedding_field"],
        "l2_reg_dnn": spec["l2_reg_dnn"],
        "dnn_dropout": spec["dnn_dropout"],
        "seed": int(spec["seed"]),
    }


class KerasWeights:
    """The weight handling both sides share: a Keras model (2 or 3) in `self.model`."""

    model: object

    def get_weights(self) -> list:
        return self.model.get_weights()

    def set_weights(self, weights: list) -> None:
        self.model.set_weights(weights)

    def count_params(self) -> int:
        return int(self.model.count_params())


def step_clock(callback_class: type, step_ended: Callable[[], None]) -> object:
    """A callback of the side's own Keras (`callback_class`: Keras 2's or 3's `Callback`) that
    calls `step_ended()` at the end of every training batch of `fit`."""

    class StepClock(callback_class):
        def on_train_batch_end(self, batch, logs=None) -> None:
            step_ended()

    return StepClock()


class Side(Protocol):
    """A model adapted to the protocol (constructed after the seeds are set)."""

    implementation: str

    def build(self, spec: dict, data: EncodedData) -> None:
        """Construct and compile the model (timed as part of 'ready')."""

    def train_epoch(self, order: np.ndarray, step_ended: Callable[[], None]) -> None:
        """Train on train rows `order`, consecutive batches of spec['batch_size'];
        call `step_ended()` as each step finishes (its result computed)."""

    def predict(self, split: str) -> np.ndarray:
        """Click probabilities of every row of `split`, in row order."""

    def get_weights(self) -> list: ...

    def set_weights(self, weights: list) -> None: ...

    def count_params(self) -> int: ...


def log_loss(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Binary cross-entropy in float64, -mean(y log p + (1 - y) log(1 - p)), p clipped to
    [1e-7, 1 - 1e-7]."""
    p = np.clip(
        np.asarray(predictions, np.float64).ravel(), PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON
    )
    y = np.asarray(labels, np.float64).ravel()
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def rows_per_epoch(spec: dict, train_rows: int) -> int:
    """All train rows, or `steps_per_epoch` batches of them when the spec limits an epoch."""
    steps = spec.get("steps_per_epoch")
    return train_rows if steps is None else min(train_rows, int(steps) * int(spec["batch_size"]))


def train(side: Side, spec: dict, data: EncodedData) -> dict:
    """Build, train with early stopping, save test predictions; the result for the driver."""
    start = time.perf_counter()
    side.build(spec, data)
    built = time.perf_counter()
    step_ends: list[float] = []
    epoch_step_counts: list[int] = []
    train_rows = data.rows("train")
    per_epoch = rows_per_epoch(spec, train_rows)
    shuffler = np.random.default_rng(int(spec["seed"]))
    evaluate = spec.get("evaluate", True)
    best_loss, best_weights, waited, val_losses = float("inf"), None, 0, []
    for _ in range(int(spec["max_epochs"])):
        order = shuffler.permutation(train_rows)[:per_epoch]
        side.train_epoch(order, lambda: step_ends.append(time.perf_counter()))
        epoch_step_counts.append(len(step_ends))
        if not evaluate:
            continue
        val_loss = log_loss(data.labels["val"], side.predict("val"))
        val_losses.append(val_loss)
        if best_loss - val_loss > spec["min_delta"]:
            best_loss, best_weights, waited = val_loss, side.get_weights(), 0
        else:
            waited += 1
            if waited >= spec["patience"]:
                break
    trained = time.perf_counter()
    if not step_ends:
        raise RuntimeError(f"{side.implementation} finished no training step (no train rows?)")
    result = {
        "implementation": side.implementation,
        "build_seconds": built - start,
        "ready_seconds": step_ends[0] - start,
        "step_ends": [end - start for end in step_ends],
        "epoch_step_counts": epoch_step_counts,
        "train_seconds": trained - built,
        "val_logloss": val_losses,
        "parameters": int(side.count_params()),
    }
    if evaluate:
        side.set_weights(best_weights)
        np.save(spec["predictions_out"], np.asarray(side.predict("test"), np.float64).ravel())
        result["predictions"] = spec["predictions_out"]
    return result


def main(make_side: Callable[[dict], Side], argv: Sequence[str] | None = None) -> None:
    """A side's worker: `python -m scripts.bench.peer.<side> SPEC.json`; prints one JSON line.

    Seeds Python's and numpy's generators; `make_side(spec)` seeds its framework (and sets its
    thread count from spec['threads'], 0 = the framework's choice) before anything is built.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        raise SystemExit("usage: python -m scripts.bench.peer.<side> SPEC.json")
    spec = json.loads(Path(argv[0]).read_text())
    missing = [key for key in SPEC_KEYS if key not in spec]
    if missing:
        raise SystemExit(f"{argv[0]}: the spec lacks {missing}")
    seed = int(spec["seed"])
    random.seed(seed)
    np.random.seed(seed)
    side = make_side(spec)
    data = EncodedData.load(spec["npz"])
    print(json.dumps(train(side, spec, data)))
