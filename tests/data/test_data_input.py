"""tf.data input: every row once per epoch, shapes and dtypes, deterministic reshuffling."""

from __future__ import annotations

import numpy as np
import pytest
from data_helpers import write_text

from fefm_lab.data import prepare
from fefm_lab.data.input import eval_dataset, train_dataset

ROWS = 1000


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("input")
    # `row` is unique per row and every row is train, so its id identifies the row
    lines = ["label\trow\tn"] + [f"{i % 2}\tr{i}\t{i % 7}" for i in range(ROWS)]
    path = write_text(tmp / "rows.tsv", lines)
    config = {"name": "rows", "format": "generic", "path": str(path), "separator": "\t",
              "label": "label", "categorical": ["row"], "numeric": ["n"], "min_count": 1,
              "integer_encoding": "dense_minmax", "split": "sequential",
              "split_fractions": [0.8, 0.1, 0.1], "shard_rows": 130}  # fmt: skip
    return prepare(config, seed=0, data_root=tmp / "root", progress=False)


def _collect(dataset):
    rows, labels, dense, sizes = [], [], [], []
    for features, batch_labels in dataset:
        assert features["row"].dtype.name == "int32" and features["row"].shape[1] == 1
        assert features["n"].dtype.name == "float32" and features["n"].shape[1] == 1
        assert batch_labels.dtype.name == "float32" and batch_labels.shape[1] == 1
        rows.append(features["row"].numpy().ravel())
        labels.append(batch_labels.numpy().ravel())
        dense.append(features["n"].numpy().ravel())
        sizes.append(int(batch_labels.shape[0]))
    return np.concatenate(rows), np.concatenate(labels), np.concatenate(dense), sizes


@pytest.mark.parametrize("budget", [1 << 30, 0], ids=["resident", "streamed"])
def test_train_epoch_has_every_row_once(data, budget):
    rows, labels, dense, sizes = _collect(train_dataset(data, 64, seed=3, epoch=0,
                                                         memory_budget_bytes=budget))  # fmt: skip
    assert sorted(rows.tolist()) == list(range(2, 2 + 800))  # ids 2.. in row order
    assert rows.tolist() != sorted(rows.tolist())  # shuffled
    # the label of row i is i % 2, and row i has id i + 2
    assert (labels == (rows - 2) % 2).all()
    np.testing.assert_allclose(dense, ((rows - 2) % 7) / 6, rtol=1e-6)
    assert sizes == [64] * 12 + [32]


def test_reshuffles_each_epoch_deterministically(data):
    def orders(seed):
        dataset = train_dataset(data_copy(data), 100, seed=seed)
        return [_collect(dataset)[0] for _ in range(3)]

    first, again, other = orders(1), orders(1), orders(2)
    # a second call on the same object starts from epoch 0 again: nothing leaks between runs
    assert np.array_equal(_collect(train_dataset(data, 100, seed=1))[0], first[0])
    assert np.array_equal(_collect(train_dataset(data, 100, seed=1))[0], first[0])
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])
    assert not np.array_equal(first[0], other[0])
    pinned = _collect(train_dataset(data, 100, seed=1, epoch=1))[0]
    assert np.array_equal(pinned, first[1])
    streamed = _collect(train_dataset(data, 100, seed=1, epoch=1, memory_budget_bytes=0))[0]
    assert np.array_equal(streamed, _collect(train_dataset(data, 100, seed=1, epoch=1,
                                                           memory_budget_bytes=0))[0])  # fmt: skip


def data_copy(data):
    """A fresh PreparedData on the same directory: the order must not depend on the object."""
    from fefm_lab.data import PreparedData

    return PreparedData.open(data.directory)


@pytest.mark.parametrize("budget", [1 << 30, 0], ids=["resident", "streamed"])
def test_eval_reads_in_order(data, budget):
    for split in ("validation", "test"):
        rows, labels, _, sizes = _collect(eval_dataset(data, split, 30, memory_budget_bytes=budget))
        features, expected_labels = data.load_split(split)
        assert rows.tolist() == features["row"].ravel().tolist()
        assert labels.tolist() == expected_labels.tolist()
        assert sizes == [30, 30, 30, 10]


def test_bad_arguments(data):
    with pytest.raises(ValueError, match="split must be one of train, validation, test"):
        eval_dataset(data, "val", 10)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        train_dataset(data, 0, seed=0)
