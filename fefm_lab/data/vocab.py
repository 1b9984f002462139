"""Per-field vocabularies over 64-bit keys, counted in bounded memory.

Ids: 0 is the field's OOV id (values seen fewer than `min_count` times in the train split, and
values never seen there), 1 is its missing-value id, and kept values get 2, 3, ... in the order of
their first appearance in the train split (so ids are reproducible and readable by a person).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

OOV_ID = 0
MISSING_ID = 1
FIRST_VALUE_ID = 2


def _merge(keys: np.ndarray, counts: np.ndarray, first: np.ndarray):
    """Collapse duplicate keys: counts add up, first appearance is the smallest."""
    order = np.lexsort((first, keys))
    keys, counts, first = keys[order], counts[order], first[order]
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return keys[starts], np.add.reduceat(counts, starts), first[starts]


class ValueCounter:
    """Counts of keys and the data-row index of their first appearance, merged lazily.

    Each chunk contributes its own np.unique result; pending results are merged into the running
    table when they outgrow it, so the merging cost stays O(n log n) overall.
    """

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.uint64)
        self.counts = np.zeros(0, dtype=np.int64)
        self.first = np.zeros(0, dtype=np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_size = 0

    def add(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Count `keys`, which appear at data rows `rows` (ascending)."""
        if len(keys) == 0:
            return
        # pandas' hash-table factorize: uniques in order of first appearance, no sort.
        codes, unique = pd.factorize(keys)
        counts = np.bincount(codes, minlength=len(unique)).astype(np.int64)
        previous_max = np.maximum.accumulate(np.concatenate(([-1], codes[:-1])))
        first_index = np.flatnonzero(codes > previous_max)
        self._pending.append((np.asarray(unique, dtype=np.uint64), counts, rows[first_index]))
        self._pending_size += len(unique)
        if self._pending_size > max(len(self.keys), 1 << 20):
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        parts = [(self.keys, self.counts, self.first), *self._pending]
        self.keys, self.counts, self.first = _merge(
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
        )
        self._pending = []
        self._pending_size = 0

    def vocabulary(self, min_count: int) -> Vocabulary:
        """Keys seen at least `min_count` times, in order of first appearance."""
        self._flush()
        kept = self.counts >= min_count
        order = np.argsort(self.first[kept], kind="stable")
        return Vocabulary(self.keys[kept][order], distinct_values=len(self.keys))


@dataclass(frozen=True)
class Vocabulary:
    """The kept keys of one field, in id order (key i has id FIRST_VALUE_ID + i)."""

    keys_in_id_order: np.ndarray
    distinct_values: int = 0

    def __post_init__(self) -> None:
        # A hash index: position i holds the key of id FIRST_VALUE_ID + i.
        object.__setattr__(self, "_index", pd.Index(self.keys_in_id_order, dtype=np.uint64))

    @property
    def size(self) -> int:
        """Number of ids: the kept values plus the OOV and missing ids."""
        return len(self.keys_in_id_order) + FIRST_VALUE_ID

    def lookup(self, keys: np.ndarray, missing: np.ndarray) -> np.ndarray:
        """int32 ids of `keys`; unknown keys get OOV_ID and missing rows MISSING_ID."""
        position = self._index.get_indexer(np.asarray(keys, dtype=np.uint64))
        ids = np.where(position >= 0, position + FIRST_VALUE_ID, OOV_ID).astype(np.int32)
        ids[missing] = MISSING_ID
        return ids
