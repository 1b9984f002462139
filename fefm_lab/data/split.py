"""Train / validation / test assignment of data rows, without holding the file in memory.

`shuffled`: row r goes by u = uniform(seed, r) (splitmix64 of seed and row number): train when
u < f_train, validation when u < f_train + f_validation, test otherwise. Deterministic from the
seed, independent of chunking, and an unbiased random split.
`sequential`: file order (time order in Criteo and Avazu): the first floor(f_train * n) rows
train, the next up to floor((f_train + f_validation) * n) validation, the rest test.
`given`: a benchmark's published split, one file per split read one after another; a row's index
is (file index << GIVEN_FILE_SHIFT) + its row in its file, so its split is the file it came from.
"""

from __future__ import annotations

import numpy as np

from fefm_lab.data.keys import uniform01

TRAIN, VALIDATION, TEST = 0, 1, 2
# 2^40 rows per file: far beyond any CTR file, and the indices stay in file order
GIVEN_FILE_SHIFT = 40


def assign_splits(
    rows: np.ndarray,
    mode: str,
    fractions: tuple[float, float, float],
    seed: int,
    total_rows: int | None = None,
) -> np.ndarray:
    """int8 split code (TRAIN, VALIDATION, TEST) of each data row index in `rows`."""
    train, validation, _ = fractions
    if mode == "given":
        return (np.asarray(rows, dtype=np.int64) >> GIVEN_FILE_SHIFT).astype(np.int8)
    if mode == "shuffled":
        position = uniform01(seed, rows)
        first, second = train, train + validation
    elif mode == "sequential":
        if total_rows is None:
            raise ValueError("a sequential split needs the total number of rows")
        position = np.asarray(rows)
        first = int(np.floor(train * total_rows))
        second = int(np.floor((train + validation) * total_rows))
    else:
        raise ValueError(f"unknown split mode {mode!r}")
    codes = np.full(len(position), TEST, dtype=np.int8)
    codes[position < second] = VALIDATION
    codes[position < first] = TRAIN
    return codes
