"""Split sizes and determinism, shuffled and sequential."""

from __future__ import annotations

import numpy as np
import pytest
from data_helpers import criteo_line, write_text

from fefm_lab.data import prepare
from fefm_lab.data.split import TEST, TRAIN, VALIDATION, assign_splits

FRACTIONS = (0.64, 0.16, 0.20)


def test_shuffled_sizes_and_determinism():
    rows = np.arange(200_000)
    codes = assign_splits(rows, "shuffled", FRACTIONS, seed=7)
    shares = np.bincount(codes, minlength=3) / len(rows)
    # binomial sd at 200k rows is about 0.001
    np.testing.assert_allclose(shares, FRACTIONS, atol=0.005)
    assert (assign_splits(rows, "shuffled", FRACTIONS, seed=7) == codes).all()
    other = assign_splits(rows, "shuffled", FRACTIONS, seed=8)
    assert (other != codes).mean() > 0.3
    # a row's split depends on its number only, not on the chunk it came in
    halves = np.concatenate(
        [assign_splits(rows[:77_777], "shuffled", FRACTIONS, 7),
         assign_splits(rows[77_777:], "shuffled", FRACTIONS, 7)]
    )  # fmt: skip
    assert (halves == codes).all()


def test_sequential_is_file_order():
    codes = assign_splits(np.arange(1000), "sequential", FRACTIONS, seed=3, total_rows=1000)
    expected = [TRAIN] * 640 + [VALIDATION] * 160 + [TEST] * 200
    assert codes.tolist() == expected
    with pytest.raises(ValueError, match="total number of rows"):
        assign_splits(np.arange(3), "sequential", FRACTIONS, seed=0)


@pytest.fixture()
def raw(tmp_path):
    lines = [
        criteo_line(int(i % 4 == 0), [i % 50, i // 50], [f"{i % 13:08x}"]) for i in range(3000)
    ]
    return write_text(tmp_path / "train.txt", lines)


def _prepare(raw, root, seed, **overrides):
    config = {"name": "s", "format": "criteo", "path": str(raw), "min_count": 1, **overrides}
    return prepare(config, seed=seed, data_root=root, progress=False)


def _arrays(data):
    arrays = {}
    for split in ("train", "validation", "test"):
        features, labels = data.load_split(split)
        arrays[split] = np.column_stack([features["I1"], features["I2"], labels])
    return arrays


def test_prepared_shuffled_split_is_deterministic(raw, tmp_path):
    a = _arrays(_prepare(raw, tmp_path / "a", seed=5))
    b = _arrays(_prepare(raw, tmp_path / "b", seed=5))
    c = _arrays(_prepare(raw, tmp_path / "c", seed=6))
    for split in a:
        assert np.array_equal(a[split], b[split])
        assert not np.array_equal(a[split], c[split])
    sizes = [len(a[s]) for s in ("train", "validation", "test")]
    expected = np.bincount(assign_splits(np.arange(3000), "shuffled", FRACTIONS, 5), minlength=3)
    assert sizes == expected.tolist()
    np.testing.assert_allclose(np.array(sizes) / 3000, FRACTIONS, atol=0.03)
    pinned = _arrays(_prepare(raw, tmp_path / "d", seed=6, split_seed=5))
    assert all(np.array_equal(a[s], pinned[s]) for s in a)


def test_prepared_sequential_split(raw, tmp_path):
    data = _prepare(raw, tmp_path / "a", seed=0, split="sequential")
    assert [data.rows(s) for s in ("train", "validation", "test")] == [1920, 480, 600]
    _, labels = data.load_split("validation")
    # rows 1920..2399 in order: label is row % 4 == 0
    assert labels.tolist() == [float(i % 4 == 0) for i in range(1920, 2400)]
    assert data.positives("train") == 480
