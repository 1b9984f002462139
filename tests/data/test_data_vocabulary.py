"""Exact vocabularies and ids on a hand-written file: min_count boundary, missing, OOV."""

from __future__ import annotations

import json

import numpy as np
import pytest
from data_helpers import criteo_line, generic_config, write_text

from fefm_lab.data import prepare
from fefm_lab.data.encode import log_bucket
from fefm_lab.memory import peak_rss_bytes

# Sequential split of 10 rows at 0.6 / 0.2 / 0.2: rows 0-5 train, 6-7 validation, 8-9 test.
HAND_ROWS = [
    "label\tc\tn",
    "1\ta\t5",
    "0\tb\t5",
    "1\ta\t7",
    "0\tc\t",
    "0\t\t7",
    "1\tb\t9",
    "0\ta\t5",
    "1\td\t9",
    "0\t\t7",
    "1\tc\t11",
]


@pytest.fixture()
def hand_file(tmp_path):
    return write_text(tmp_path / "hand.tsv", HAND_ROWS)


def _ids(data, split, name):
    features, _ = data.load_split(split)
    return features[name].ravel().tolist()


def test_ids_follow_first_appearance_with_min_count_missing_and_oov(hand_file, data_root):
    data = prepare(generic_config(hand_file), seed=0, data_root=data_root, progress=False)
    # c in train: a x2 (kept, id 2), b x2 (kept, id 3), c x1 (below min_count 2: OOV 0), missing 1
    assert _ids(data, "train", "c") == [2, 3, 2, 0, 1, 3]
    assert _ids(data, "validation", "c") == [2, 0]  # a; d never seen in train -> OOV
    assert _ids(data, "test", "c") == [1, 0]  # missing; c rare in train -> OOV
    # n as integer categories: 5 x2 (id 2), 7 x2 (id 3), 9 x1 (OOV), missing
    assert _ids(data, "train", "n") == [2, 2, 3, 1, 3, 0]
    assert _ids(data, "validation", "n") == [2, 0]
    assert _ids(data, "test", "n") == [3, 0]  # 7; 11 unseen
    _, labels = data.load_split("train")
    assert labels.tolist() == [1, 0, 1, 0, 0, 1]
    assert labels.dtype == np.float32
    spec = data.feature_map.field("c")
    assert (spec.vocabulary_size, spec.oov_id, spec.missing_id) == (4, 0, 1)
    assert spec.distinct_train_values == 3
    on_disk = json.loads((data.directory / "feature_map.json").read_text())
    assert [f["name"] for f in on_disk["fields"]] == ["c", "n"]
    assert on_disk["total_vocabulary"] == 8
    # where the time went, per phase (the row count runs for the sequential split)
    seconds = data.manifest["seconds"]
    assert list(seconds) == ["count_rows", "pass1", "vocabularies", "pass2"]
    assert all(isinstance(value, float) and value >= 0 for value in seconds.values())
    # and the memory: the process's running peak at the start and at the end of each phase
    peaks = data.manifest["peak_rss_bytes"]
    assert list(peaks) == ["start", "count_rows", "pass1", "vocabularies", "pass2"]
    values = list(peaks.values())
    assert all(isinstance(value, int) for value in values)
    assert values == sorted(values)  # a running maximum never falls
    assert values[0] > 0 and values[-1] <= peak_rss_bytes()


@pytest.mark.parametrize(
    ("min_count", "train_ids", "vocabulary_size"),
    [(1, [2, 3, 2, 4, 1, 3], 5), (2, [2, 3, 2, 0, 1, 3], 4), (3, [0, 0, 0, 0, 1, 0], 2)],
)
def test_min_count_boundary(hand_file, data_root, min_count, train_ids, vocabulary_size):
    config = generic_config(hand_file, min_count=min_count)
    data = prepare(config, seed=0, data_root=data_root, progress=False)
    assert _ids(data, "train", "c") == train_ids
    assert data.feature_map.field("c").vocabulary_size == vocabulary_size


def test_log_bucket_values():
    values = np.array([-5, -1, 0, 1, 2, 3, 4, 10, 20, 21, 100])
    buckets = log_bucket(values)
    # floor(ln(x)^2): ln 3 = 1.0986 -> 1, ln 4 -> 1.92 -> 1, ln 10 -> 5.30, ln 20 -> 8.97,
    # ln 21 -> 9.27, ln 100 -> 21.2
    assert buckets[5:].tolist() == [1, 1, 5, 8, 9, 21]
    small = buckets[:5]
    assert len(set(small.tolist())) == 5  # each x <= 2 is its own category
    assert (small < 0).all()  # and never one of the buckets


def test_log_bucket_encoding_ids(tmp_path, data_root):
    rows = ["label\tc\tn"] + [f"0\tx\t{v}" for v in (-1, 0, 2, 3, 10, 4, 100, 2)]
    path = write_text(tmp_path / "lb.tsv", rows)
    config = generic_config(
        path, integer_encoding="log_bucket", min_count=1, split_fractions=[1.0, 0.0, 0.0]
    )
    data = prepare(config, seed=0, data_root=data_root, progress=False)
    # first appearance order: -1, 0, 2, bucket 1 (3 and 4), bucket 5 (10), bucket 21 (100)
    assert _ids(data, "train", "n") == [2, 3, 4, 5, 6, 5, 7, 4]
    assert data.rows("validation") == data.rows("test") == 0


def test_dense_minmax_scales_on_train_statistics(hand_file, data_root):
    config = generic_config(hand_file, integer_encoding="dense_minmax")
    data = prepare(config, seed=0, data_root=data_root, progress=False)
    spec = data.feature_map.field("n")
    assert (spec.kind, spec.dimension, spec.scale_min, spec.scale_max) == ("dense", 1, 0.0, 9.0)
    features, _ = data.load_split("train")
    assert features["n"].dtype == np.float32
    assert features["n"].shape == (6, 1)
    expected = np.array([5, 5, 7, 0, 7, 9], dtype=np.float64) / 9  # missing counts as 0
    np.testing.assert_allclose(features["n"].ravel(), expected, rtol=1e-7)
    test_features, _ = data.load_split("test")
    np.testing.assert_allclose(test_features["n"].ravel(), [7 / 9, 1.0], rtol=1e-7)  # 11 clipped
    linear, dnn = data.feature_columns(embedding_dim=3)
    assert [type(c).__name__ for c in linear] == ["SparseFeat", "DenseFeat"]
    assert linear[0].vocabulary_size == 4 and linear[0].embedding_dim == 3
    assert linear == dnn


def test_criteo_layout_fields_and_ids(tmp_path, data_root):
    lines = [
        criteo_line(1, [1, -2, None], ["aaaaaaaa", "bbbbbbbb"]),
        criteo_line(0, [1, -2, 3], ["aaaaaaaa", None]),
        criteo_line(0, [None, 5, 3], ["cccccccc", "bbbbbbbb"]),
    ]
    path = write_text(tmp_path / "train.txt", lines)
    config = {"name": "c", "format": "criteo", "path": str(path), "min_count": 1}
    config |= {"split": "sequential", "split_fractions": [1.0, 0.0, 0.0]}
    data = prepare(config, seed=0, data_root=data_root, progress=False)
    names = [f.name for f in data.feature_map.fields]
    assert names == [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    features, labels = data.load_split("train")
    assert labels.tolist() == [1, 0, 0]
    assert features["I1"].ravel().tolist() == [2, 2, 1]
    assert features["I2"].ravel().tolist() == [2, 2, 3]
    assert features["I3"].ravel().tolist() == [1, 2, 2]
    assert features["C1"].ravel().tolist() == [2, 2, 3]
    assert features["C2"].ravel().tolist() == [2, 1, 2]
    assert features["C26"].ravel().tolist() == [1, 1, 1]
    assert data.feature_map.field("C26").vocabulary_size == 2
