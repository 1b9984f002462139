"""Vectorised 64-bit keys for raw values, so vocabularies never hold Python strings.

A string of at most 7 bytes is packed exactly (its bytes, little-endian, with the length in the top
byte), so short values never collide; an 8-byte string is its own 8 bytes (hashed instead when its
last byte is below 8, which would look like a packed length). Longer strings are hashed 8 bytes at a
time with the splitmix64 finaliser; two distinct long values collide with probability about
n^2 / 2^65 per field (about 3e-6 for Criteo's largest field, 10M values).
Integers are their own key.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a bijective, well-mixed map uint64 -> uint64."""
    z = np.asarray(values, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def uniform01(seed: int, index: np.ndarray) -> np.ndarray:
    """Deterministic uniforms in [0, 1) from (seed, index): 53 high bits of a double mix."""
    seed_key = splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    mixed = splitmix64(splitmix64(np.asarray(index, dtype=np.uint64) ^ seed_key))
    return (mixed >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _valid_mask(array: pa.Array) -> np.ndarray:
    """Bool per row, True where not null: the validity bitmap unpacked (about 15x
    `is_valid().to_numpy()`, which converts bit by bit)."""
    bitmap = array.buffers()[0]
    if array.null_count == 0 or bitmap is None:
        return np.ones(len(array), dtype=bool)
    bits = np.frombuffer(bitmap, dtype=np.uint8)
    unpacked = np.unpackbits(bits, count=array.offset + len(array), bitorder="little")
    return unpacked[array.offset :].view(bool)


def _string_parts(array: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, data bytes, valid mask) of a string/binary array without copying the data."""
    offset_dtype = np.int64 if pa.types.is_large_string(array.type) else np.int32
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offset_dtype)[
        array.offset : array.offset + len(array) + 1
    ]
    if buffers[2] is None:
        data = np.zeros(0, dtype=np.uint8)
    else:
        data = np.frombuffer(buffers[2], dtype=np.uint8)
    return offsets.astype(np.int64), data, _valid_mask(array)


def string_keys(array: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 key per row, missing mask) of a string column; nulls are missing (key 0)."""
    if isinstance(array, pa.ChunkedArray):
        if array.num_chunks == 1:
            array = array.chunk(0)
        elif array.num_chunks == 0:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=bool)
        else:
            parts = [string_keys(chunk) for chunk in array.chunks]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pc.cast(array, pa.string())
    offsets, data, valid = _string_parts(array)
    starts = offsets[:-1]
    lengths = offsets[1:] - starts
    keys = np.zeros(len(array), dtype=np.uint64)
    # Row positions, not boolean masks: a take is about 3x a random boolean index.
    present = None if array.null_count == 0 else np.flatnonzero(valid)
    valid_lengths = lengths if present is None else lengths.take(present)
    if len(valid_lengths) and valid_lengths.min() == valid_lengths.max():
        # Every value has the same length (Criteo's hex hashes): valid rows are contiguous bytes
        # (a null holds no bytes).
        length = int(valid_lengths[0])
        block = data[offsets[0] : offsets[-1]].reshape(len(valid_lengths), length)
        if present is None:
            return _keys_of_matrix(block, length), ~valid
        keys[present] = _keys_of_matrix(block, length)
        return keys, ~valid
    for length in np.unique(valid_lengths):
        rows = np.flatnonzero(valid & (lengths == length))
        keys[rows] = _keys_of_length(data, starts[rows], int(length))
    return keys, ~valid


def _keys_of_length(data: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Keys of rows that all hold `length` bytes starting at `starts`."""
    if length == 0:
        return _keys_of_matrix(np.zeros((len(starts), 0), dtype=np.uint8), 0)
    return _keys_of_matrix(data[starts[:, None] + np.arange(length)], length)


def _keys_of_matrix(block: np.ndarray, length: int) -> np.ndarray:
    """Keys of the rows of a (rows, length) uint8 matrix."""
    words = -(-max(length, 1) // 8)
    if length == words * 8:
        padded = np.ascontiguousarray(block)
    else:
        padded = np.zeros((len(block), words * 8), dtype=np.uint8)
        padded[:, :length] = block
    as_words = padded.view("<u8")
    if length <= 7:
        return as_words[:, 0] | (np.uint64(length) << np.uint64(56))
    if length == 8:
        keys = as_words[:, 0].copy()
        looks_packed = (keys >> np.uint64(56)) < np.uint64(8)
        if looks_packed.any():
            keys[looks_packed] = splitmix64(keys[looks_packed] ^ np.uint64(8))
        return keys
    hashed = splitmix64(np.full(len(block), length, dtype=np.uint64))
    for column in range(words):
        hashed = splitmix64(hashed ^ as_words[:, column])
    return hashed


def integer_keys(values: np.ndarray) -> np.ndarray:
    """Integers are their own key (two's complement bits as uint64)."""
    return np.asarray(values, dtype=np.int64).view(np.uint64)
