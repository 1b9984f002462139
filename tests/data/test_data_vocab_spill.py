"""Counting with spilled, hash-partitioned counts gives the same vocabularies and shards as the
in-memory table, and the same bytes as before the spilling counter existed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from fefm_lab.data import prepare
from fefm_lab.data import vocab as vocab_module
from fefm_lab.data.keys import splitmix64
from fefm_lab.data.vocab import ValueCounter

# SHA-256 over the prepared files of `_skewed_criteo_file` (see `_content_digest`), computed with
# the in-memory counter of commit d5669fe, before counts could spill: the prepared bytes must
# never change for the same input, so runs keep their data_fingerprint and metrics.
GOLDEN_DIGEST = "af8bddd01316ecaf478ff1c36a1614122fb9aad09f6f10d5cc58585320da7115"


def _skewed_criteo_file(path: Path, rows: int = 30_000, seed: int = 7) -> Path:
    """Criteo-format rows with Zipf-like categorical values (many rare, a few frequent) and
    missing values, written by a seeded RNG (not the generator, which may change)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.25).astype(int)
    columns = [labels.astype(str)]
    for field in range(13):
        values = rng.zipf(1.6, rows) - 1
        text = values.astype(str).astype(object)
        text[rng.random(rows) < 0.1 + 0.02 * field] = ""
        columns.append(text)
    for field in range(26):
        distinct = 10 ** (1 + field % 6)
        values = np.minimum(rng.zipf(1.3, rows), distinct) * 2654435761 % (1 << 32)
        text = np.char.mod("%08x", values).astype(object)
        text[rng.random(rows) < 0.05 * (field % 4)] = ""
        columns.append(text)
    lines = ["\t".join(row) for row in zip(*columns, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _content_digest(directory: Path) -> str:
    """SHA-256 of every prepared file but the manifest (which holds times), by relative path."""
    digest = hashlib.sha256()
    for file in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = file.relative_to(directory).as_posix()
        if relative == "manifest.json":
            continue
        digest.update(relative.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def _prepare(raw: Path, root: Path):
    config = {"name": "skewed", "format": "criteo", "path": str(raw), "block_bytes": 1 << 20}
    return prepare(config, seed=0, data_root=root, progress=False)


@pytest.fixture(scope="module")
def skewed_file(tmp_path_factory) -> Path:
    return _skewed_criteo_file(tmp_path_factory.mktemp("skewed") / "skewed.txt")


def test_prepared_bytes_match_the_in_memory_counter_of_before(skewed_file, tmp_path):
    data = _prepare(skewed_file, tmp_path / "default")
    assert _content_digest(data.directory) == GOLDEN_DIGEST


def test_many_spills_and_bucket_groups_give_the_same_bytes(skewed_file, tmp_path, monkeypatch):
    # Spill after every few hundred entries and count a handful of buckets at a time.
    monkeypatch.setattr(vocab_module, "DEFAULT_PENDING_ENTRIES", 300)
    monkeypatch.setattr(vocab_module, "DEFAULT_GROUP_ENTRIES", 2_000)
    data = _prepare(skewed_file, tmp_path / "spilled")
    assert _content_digest(data.directory) == GOLDEN_DIGEST
    assert not list(data.directory.parent.glob(".tmp-*"))  # spill files went with the temporary
    widest = max(spec.distinct_train_values for spec in data.feature_map.fields)
    assert widest > 2_000  # the widest field really was counted in several groups


def _counter_result(counter: ValueCounter, rows: np.ndarray, keys: np.ndarray, min_count: int):
    for start in range(0, len(keys), 997):
        counter.add(keys[start : start + 997], rows[start : start + 997])
    vocabulary = counter.vocabulary(min_count)
    return vocabulary.keys_in_id_order.tolist(), vocabulary.distinct_values


def test_spilled_counter_equals_in_memory_counter_and_brute_force(tmp_path):
    rng = np.random.default_rng(3)
    keys = splitmix64(rng.zipf(1.2, 50_000).astype(np.uint64))
    rows = np.sort(rng.choice(200_000, size=len(keys), replace=False)).astype(np.int64)
    spill = tmp_path / "counts" / "field.bin"
    for min_count in (1, 3, 20):
        in_memory = _counter_result(ValueCounter(), rows, keys, min_count)
        spilled = _counter_result(
            ValueCounter(spill, pending_entries=500, group_entries=1_000), rows, keys, min_count
        )
        # brute force: first appearance order of keys seen >= min_count times
        unique, first_index, counts = np.unique(keys, return_index=True, return_counts=True)
        kept = np.argsort(first_index[counts >= min_count], kind="stable")
        expected = unique[counts >= min_count][kept].tolist()
        assert in_memory == spilled == (expected, len(unique))
        assert not spill.exists()  # the spill file is removed once counted


def test_pending_pieces_merge_gives_the_same_bytes(skewed_file, tmp_path, monkeypatch):
    # Merge a field's pending chunk results after every second chunk (1 MiB blocks: ~5 chunks).
    monkeypatch.setattr(vocab_module, "PENDING_PIECES", 2)
    data = _prepare(skewed_file, tmp_path / "merged")
    assert _content_digest(data.directory) == GOLDEN_DIGEST


def test_few_distinct_values_per_chunk_stay_in_one_merged_piece(tmp_path):
    """A field with few distinct values never reaches `pending_entries`: its chunk results are
    merged every PENDING_PIECES chunks, so the counter holds a bounded number of pieces (and of
    entries: one per distinct value) whatever the row count, with exact counts and first rows."""
    rng = np.random.default_rng(5)
    keys = splitmix64(rng.integers(0, 40, size=40_000).astype(np.uint64))
    rows = np.arange(len(keys), dtype=np.int64) * 3
    counter = ValueCounter(tmp_path / "field.bin", pending_entries=1 << 16)
    most_pieces = most_entries = 0
    for start in range(0, len(keys), 100):  # 400 chunks of 100 rows
        counter.add(keys[start : start + 100], rows[start : start + 100])
        most_pieces = max(most_pieces, len(counter._pending))
        most_entries = max(most_entries, counter._pending_size)
    assert most_pieces == vocab_module.PENDING_PIECES - 1
    # one merged piece (<= 40 entries) and at most PENDING_PIECES - 2 chunks of <= 40 each
    assert most_entries <= 40 * (vocab_module.PENDING_PIECES - 1)
    # what is pending adds up to the brute-force counts, with first rows the smallest
    unique, first_index, counts = np.unique(keys, return_index=True, return_counts=True)
    totals, firsts = {}, {}
    for piece_keys, piece_counts, piece_first in counter._pending:
        for key, count, first in zip(piece_keys.tolist(), piece_counts, piece_first, strict=True):
            totals[key] = totals.get(key, 0) + int(count)
            firsts[key] = min(firsts.get(key, first), int(first))
    assert totals == dict(zip(unique.tolist(), counts.tolist(), strict=True))
    assert firsts == dict(zip(unique.tolist(), rows[first_index].tolist(), strict=True))
    vocabulary = counter.vocabulary(1_000)
    kept = counts >= 1_000
    expected = unique[kept][np.argsort(first_index[kept], kind="stable")].tolist()
    assert vocabulary.keys_in_id_order.tolist() == expected
    assert vocabulary.distinct_values == 40
    assert 0 < len(expected) < 40  # the cut kept some values and dropped others


def test_a_merged_count_too_large_for_a_spill_record_spills_the_pieces_instead(
    tmp_path, monkeypatch
):
    # a spill record's count is uint32; with a limit of 250 the merge of chunks of 100 rows of
    # one value would overflow it on the third piece, so those pieces are spilled unmerged
    monkeypatch.setattr(vocab_module, "_MOST_SPILLED_COUNT", 250)
    monkeypatch.setattr(vocab_module, "PENDING_PIECES", 2)
    counter = ValueCounter(tmp_path / "field.bin", pending_entries=1 << 16)
    key = splitmix64(np.array([9], dtype=np.uint64))
    for chunk in range(10):
        counter.add(np.repeat(key, 100), np.arange(chunk * 100, chunk * 100 + 100))
        assert max((int(piece[1].max()) for piece in counter._pending), default=0) <= 250
    assert counter._spilled_records > 0
    vocabulary = counter.vocabulary(1_000)
    assert vocabulary.keys_in_id_order.tolist() == key.tolist()
    assert vocabulary.distinct_values == 1
