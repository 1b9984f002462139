"""The shared real samples (used in place, never copied): every row and click accounted for."""

from __future__ import annotations

import numpy as np
import pytest

from fefm_lab.data import prepare
from fefm_lab.errors import DataError

SPLITS = ("train", "validation", "test")


def _accounting(data):
    rows = sum(data.rows(s) for s in SPLITS)
    clicks = sum(data.positives(s) for s in SPLITS)
    return rows, clicks


def _check_min_count(data, min_count):
    """Every kept id occurs >= min_count times in train; ids stay inside each vocabulary."""
    train, _ = data.load_split("train")
    for spec in data.feature_map.sparse_fields:
        counts = np.bincount(train[spec.name].ravel(), minlength=spec.vocabulary_size)
        assert len(counts) == spec.vocabulary_size, spec.name
        assert (counts[2:] >= min_count).all(), spec.name
    for split in ("validation", "test"):
        features, _ = data.load_split(split)
        for spec in data.feature_map.sparse_fields:
            ids = features[spec.name]
            assert ids.min() >= 0 and ids.max() < spec.vocabulary_size, spec.name


@pytest.mark.real_data
@pytest.mark.parametrize("encoding", ["categorical", "log_bucket", "dense_minmax"])
def test_criteo_sample(real_data_dir, tmp_path, encoding):
    path = real_data_dir / "criteo" / "train_10k.txt"
    config = {"name": "criteo", "format": "criteo", "path": str(path), "min_count": 20,
              "integer_encoding": encoding}  # fmt: skip
    data = prepare(config, seed=1, data_root=tmp_path, progress=False)
    assert data.manifest["bad_rows"] == 0
    assert _accounting(data) == (10_000, 2_182)
    assert len(data.feature_map.fields) == 39
    assert len(data.feature_map.dense_fields) == (13 if encoding == "dense_minmax" else 0)
    _check_min_count(data, 20)
    if encoding == "dense_minmax":
        train, _ = data.load_split("train")
        assert all(0.0 <= train[f"I{i}"].min() <= train[f"I{i}"].max() <= 1.0 for i in range(1, 14))


@pytest.mark.real_data
def test_avazu_sample(real_data_dir, tmp_path):
    path = real_data_dir / "avazu" / "train_5k.csv"
    config = {"name": "avazu", "format": "avazu", "path": str(path), "min_count": 20}
    data = prepare(config, seed=1, data_root=tmp_path, progress=False)
    assert data.manifest["bad_rows"] == 0
    assert _accounting(data) == (5_000, 863)
    names = [f.name for f in data.feature_map.fields]
    assert len(names) == 22 and names[0] == "hour" and "id" not in names and "click" not in names
    assert data.feature_map.field("hour").vocabulary_size == 3  # one hour in the sample: 00
    _check_min_count(data, 20)


@pytest.mark.real_data
def test_criteo_unlabeled_test_file_is_refused_with_its_line(real_data_dir, tmp_path):
    path = real_data_dir / "criteo" / "test_10k_unlabeled.txt"
    config = {"name": "criteo", "format": "criteo", "path": str(path)}

    with pytest.raises(DataError, match=r"unlabeled\.txt, line 1: expected 40 columns, found 39"):
        prepare(config, seed=1, data_root=tmp_path, progress=False)
    with pytest.raises(DataError, match=r"no valid data rows \(bad rows skipped: 10000\)"):
        prepare({**config, "on_bad_rows": "skip"}, seed=1, data_root=tmp_path, progress=False)
    assert not any((tmp_path / "prepared").glob("criteo-*"))
