"""Raw columns -> 64-bit keys (sparse fields) or scaled floats (dense fields), per chunk.

Integer encodings of numeric columns:
- `categorical`: every integer value is its own category ("discretised at integer levels").
- `log_bucket`: x > 2 becomes the bucket floor(ln(x)^2) (the 2014 Kaggle winners' scheme); each
  x <= 2 (including 0 and negatives) keeps a category of its own, apart from the buckets.
- `dense_minmax`: a dense value (x - min) / (max - min) with min and max of the train split;
  missing values count as 0 before scaling (as DeepCTR's example fills them), and validation/test
  values are clipped to [0, 1]. A constant column scales to 0.
"""

from __future__ import annotations

import numpy as np

from fefm_lab.data.keys import integer_keys, string_keys
from fefm_lab.data.reader import RawChunk

# Keys of log_bucket values x <= 2: far below every bucket key (buckets are >= 1).
_SMALL_VALUE_BASE = np.int64(-(1 << 62))


def log_bucket(values: np.ndarray) -> np.ndarray:
    """int64 category per value: floor(ln(x)^2) for x > 2; x <= 2 keeps its own category."""
    values = np.asarray(values)
    large = values > 2
    safe = np.where(large, values, 3).astype(np.float64)
    buckets = np.floor(np.log(safe) ** 2).astype(np.int64)
    small = _SMALL_VALUE_BASE + np.minimum(values, 2).astype(np.int64)
    return np.where(large, buckets, small)


def sparse_keys(chunk: RawChunk, name: str, encoding: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 keys, missing mask) of one sparse field of a chunk."""
    if encoding == "string":
        return string_keys(chunk.strings[name])
    values, missing = chunk.numbers[name]
    if encoding == "log_bucket":
        return integer_keys(log_bucket(values)), missing
    return integer_keys(values), missing


def dense_values(chunk: RawChunk, name: str) -> np.ndarray:
    """float64 values of a dense field; missing values are 0."""
    values, missing = chunk.numbers[name]
    return np.where(missing, 0.0, values.astype(np.float64))


def min_max_scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """(x - low) / (high - low) clipped to [0, 1], as float32; 0 when high == low."""
    if high <= low:
        return np.zeros(len(values), dtype=np.float32)
    return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)
