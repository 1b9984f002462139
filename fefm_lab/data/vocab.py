"""Per-field vocabularies over 64-bit keys, counted in bounded memory.

Ids: 0 is the field's OOV id (values seen fewer than `min_count` times in the train split, and
values never seen there), 1 is its missing-value id, and kept values get 2, 3, ... in the order of
their first appearance in the train split (so ids are reproducible and readable by a person).

Counting at full Criteo size (about 33M distinct values before the min-count cut) must not hold a
table of every value: `ValueCounter` with a spill file keeps only a bounded number of pending
entries, writes them out partitioned by a hash of the key, and counts at the end one group of hash
buckets at a time, so its memory is bounded by a bucket group, not by the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from fefm_lab.data.keys import splitmix64

OOV_ID = 0
MISSING_ID = 1
FIRST_VALUE_ID = 2

# One spilled entry: a key, the data row of its first appearance in a chunk, its count there.
SPILL_RECORD = np.dtype([("key", "<u8"), ("first", "<i8"), ("count", "<u4")])
_MOST_SPILLED_COUNT = np.iinfo(SPILL_RECORD["count"]).max
HASH_BUCKETS = 64  # spilled entries are partitioned by the top 6 bits of splitmix64(key)
_BUCKET_SHIFT = np.uint64(58)
DEFAULT_PENDING_ENTRIES = 1 << 16  # per field: about 1.5 MiB of pending chunk results
DEFAULT_GROUP_ENTRIES = 1 << 20  # entries counted together at the end: about 100 MiB while merged
# Pending chunk results per field before they are merged into one: a field with few distinct
# values per chunk would otherwise hold three small arrays per chunk until the end (it never
# reaches `pending_entries`), scattered through the allocator's heap, which then cannot reuse or
# return the pages between them; its resident size grew with the rows.
PENDING_PIECES = 32


def _merge(keys: np.ndarray, counts: np.ndarray, first: np.ndarray):
    """Collapse duplicate keys: counts add up, first appearance is the smallest.

    A hash factorize and scatter (O(n)), about 4x the sort by (key, first) it replaced; keys come
    out in order of their first entry, which no caller depends on (`vocabulary` orders by first
    appearance)."""
    codes, unique = pd.factorize(keys)
    # float64 weights add integer counts exactly below 2^53
    totals = np.bincount(codes, weights=counts, minlength=len(unique)).astype(np.int64)
    smallest = np.full(len(unique), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, codes, first)
    return np.asarray(unique, dtype=np.uint64), totals, smallest


class ValueCounter:
    """Exact counts of keys and the data-row index of their first appearance.

    Each chunk contributes its own distinct keys (pd.factorize, no sort). Without `spill_path`
    the pending results are merged into one in-memory table when they outgrow it (O(n log n)
    overall, memory O(distinct keys)). With `spill_path`, pending results beyond
    `pending_entries` are appended to that file, grouped by hash bucket (every PENDING_PIECES
    chunks they are merged into one piece first), and `vocabulary` merges the buckets a group
    at a time: memory O(pending_entries + group_entries), the same result.
    """

    def __init__(
        self,
        spill_path: Path | None = None,
        *,
        pending_entries: int | None = None,
        group_entries: int | None = None,
    ) -> None:
        self.keys = np.zeros(0, dtype=np.uint64)
        self.counts = np.zeros(0, dtype=np.int64)
        self.first = np.zeros(0, dtype=np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_size = 0
        self.spill_path = None if spill_path is None else Path(spill_path)
        self.pending_entries = pending_entries or DEFAULT_PENDING_ENTRIES
        self.group_entries = group_entries or DEFAULT_GROUP_ENTRIES
        self._spill: BinaryIO | None = None
        # Per spill: record offset of the spill in the file and its bucket bounds (B + 1), as
        # Python ints: thousands of small arrays kept to the end would be scattered through
        # the C heap that the chunks' arrays come from (see PENDING_PIECES).
        self._spills: list[tuple[int, tuple[int, ...]]] = []
        self._spilled_records = 0

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
        if self.spill_path is not None:
            if self._pending_size > self.pending_entries:
                self._write_spill()
            elif len(self._pending) >= PENDING_PIECES:
                self._merge_pending()
        elif self._pending_size > max(len(self.keys), 1 << 20):
            self._flush()

    def _merge_pending(self) -> None:
        """Replace the pending chunk results by one piece, a key's entries collapsed (exact:
        counts add, first appearance the smallest; what is spilled later counts the same)."""
        keys, counts, first = (np.concatenate(part) for part in zip(*self._pending, strict=True))
        merged = _merge(keys, counts, first)
        if merged[1].max() > _MOST_SPILLED_COUNT:
            self._write_spill()  # the pieces as they are: each count fits a spill record
            return
        self._pending = [merged]
        self._pending_size = len(merged[0])

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

    def _write_spill(self) -> None:
        """Append the pending entries to the spill file, ordered by hash bucket (stable, so a
        key's entries stay in chunk order within and across spills)."""
        if not self._pending:
            return
        keys = np.concatenate([p[0] for p in self._pending])
        buckets = (splitmix64(keys) >> _BUCKET_SHIFT).astype(np.uint8)
        order = np.argsort(buckets, kind="stable")
        records = np.empty(len(keys), dtype=SPILL_RECORD)
        records["key"] = keys[order]
        records["first"] = np.concatenate([p[2] for p in self._pending])[order]
        records["count"] = np.concatenate([p[1] for p in self._pending])[order]
        bounds = np.concatenate(([0], np.cumsum(np.bincount(buckets, minlength=HASH_BUCKETS))))
        if self._spill is None:
            self.spill_path.parent.mkdir(parents=True, exist_ok=True)
            self._spill = open(self.spill_path, "wb")  # noqa: SIM115 (closed in vocabulary)
        records.tofile(self._spill)
        self._spills.append((self._spilled_records, tuple(bounds.tolist())))
        self._spilled_records += len(records)
        self._pending = []
        self._pending_size = 0

    def _spilled_groups(self):
        """(keys, counts, first) of consecutive hash buckets, about `group_entries` at a time;
        every key's entries fall in exactly one group."""
        self._write_spill()
        self._spill.close()
        sizes = np.diff(np.array([bounds for _, bounds in self._spills]), axis=1).sum(axis=0)
        start = 0
        with open(self.spill_path, "rb") as handle:
            while start < HASH_BUCKETS:
                stop, total = start + 1, int(sizes[start])
                while stop < HASH_BUCKETS and total + sizes[stop] <= self.group_entries:
                    total += int(sizes[stop])
                    stop += 1
                pieces = []
                for offset, bounds in self._spills:
                    count = bounds[stop] - bounds[start]
                    if count:
                        handle.seek((offset + bounds[start]) * SPILL_RECORD.itemsize)
                        pieces.append(np.fromfile(handle, dtype=SPILL_RECORD, count=count))
                records = np.concatenate(pieces) if pieces else np.empty(0, SPILL_RECORD)
                yield _merge(records["key"], records["count"].astype(np.int64), records["first"])
                start = stop
        self.spill_path.unlink()

    def vocabulary(self, min_count: int) -> Vocabulary:
        """Keys seen at least `min_count` times, in order of first appearance."""
        if self._spill is None:
            self._flush()
            groups = [(self.keys, self.counts, self.first)]
        else:
            groups = self._spilled_groups()
        kept_keys, kept_first, distinct = [], [], 0
        for keys, counts, first in groups:
            kept = counts >= min_count
            kept_keys.append(keys[kept])
            kept_first.append(first[kept])
            distinct += len(keys)
        order = np.argsort(np.concatenate(kept_first), kind="stable")
        return Vocabulary(np.concatenate(kept_keys)[order], distinct_values=distinct)


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
        # unknown (-1) -> OOV_ID 0 and position p -> FIRST_VALUE_ID + p = p + 2, in place:
        # add 1, then 1 more where known (about 4x cheaper than np.where and a cast)
        position += 1
        ids = position.astype(np.int32)
        ids += ids > 0
        ids[missing] = MISSING_ID
        return ids
