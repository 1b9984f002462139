"""Value keys against a plain-Python statement of their definition, and the count merge."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fefm_lab.data.keys import string_keys
from fefm_lab.data.vocab import MISSING_ID, OOV_ID, Vocabulary, _merge

MASK = (1 << 64) - 1


def _splitmix64(value: int) -> int:
    z = (value + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _reference_key(text: str | None) -> int:
    """keys.py's definition, one value at a time."""
    if text is None:
        return 0
    raw = text.encode()
    if len(raw) <= 7:
        return int.from_bytes(raw, "little") | (len(raw) << 56)
    if len(raw) == 8:
        word = int.from_bytes(raw, "little")
        return _splitmix64(word ^ 8) if (word >> 56) < 8 else word
    hashed = _splitmix64(len(raw))
    padded = raw + b"\0" * (-len(raw) % 8)
    for start in range(0, len(padded), 8):
        hashed = _splitmix64(hashed ^ int.from_bytes(padded[start : start + 8], "little"))
    return hashed


VALUES = ["a", None, "68fd1e64", "\x01bcdefgh", "", "longer than eight", None, "é", "abcdefg"]


def _check(array) -> None:
    values = array.to_pylist()
    keys, missing = string_keys(array)
    assert keys.dtype == np.uint64 and missing.dtype == bool
    assert keys.tolist() == [_reference_key(v) for v in values]
    assert missing.tolist() == [v is None for v in values]


def test_string_keys_match_the_definition_for_every_length_and_nulls():
    _check(pa.array(VALUES))
    _check(pa.array(VALUES, type=pa.large_string()))


def test_string_keys_of_slices_and_chunked_columns():
    # An array slice starts inside a validity byte; chunked columns come from the CSV reader.
    array = pa.array(VALUES * 3)
    for start in range(0, 12):
        _check(array.slice(start, 11))
    _check(pa.chunked_array([array.slice(0, 5), array.slice(5, 9), array.slice(14)]))


def test_string_keys_of_equal_length_values_with_and_without_nulls():
    # The contiguous-bytes path (Criteo's 8-hex-digit values).
    hexes = [f"{value:08x}" for value in range(0, 4000, 37)]
    _check(pa.array(hexes))
    with_nulls = [None if index % 5 == 0 else value for index, value in enumerate(hexes)]
    _check(pa.array(with_nulls).slice(3))
    _check(pa.array([None, None], type=pa.string()))


def test_merge_adds_counts_and_keeps_the_smallest_first_row_in_any_entry_order():
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 50, 2_000).astype(np.uint64)
    counts = rng.integers(1, 9, 2_000).astype(np.int64)
    first = rng.permutation(10_000)[:2_000].astype(np.int64)
    merged_keys, merged_counts, merged_first = _merge(keys, counts, first)
    expected = {}
    for key, count, row in zip(keys.tolist(), counts.tolist(), first.tolist(), strict=True):
        total, smallest = expected.get(key, (0, row))
        expected[key] = (total + count, min(smallest, row))
    assert merged_keys.dtype == np.uint64 and merged_counts.dtype == np.int64
    got = dict(
        zip(
            merged_keys.tolist(),
            zip(merged_counts.tolist(), merged_first.tolist(), strict=True),
            strict=True,
        )
    )
    assert got == expected


def test_lookup_gives_first_value_ids_oov_and_missing():
    vocabulary = Vocabulary(np.array([70, 5, 9], dtype=np.uint64))
    keys = np.array([5, 70, 4, 9, 0, 9, 123], dtype=np.uint64)
    missing = np.array([False, False, False, False, True, False, False])
    ids = vocabulary.lookup(keys, missing)
    assert ids.dtype == np.int32
    assert ids.tolist() == [3, 2, OOV_ID, 4, MISSING_ID, 4, OOV_ID]
    assert vocabulary.size == 5
