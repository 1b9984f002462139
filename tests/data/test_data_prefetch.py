"""`prefetched`: chunks produced one ahead in a thread arrive in order, errors arrive where they
happened, and a consumer that stops early stops (and closes) the producer."""

from __future__ import annotations

import threading

import pytest
from data_helpers import generic_config, write_text

from fefm_lab.data import prepare
from fefm_lab.data.reader import prefetched
from fefm_lab.errors import DataError


def _producer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "fefm-lab-prefetch"]


def test_items_arrive_in_order_and_the_thread_ends():
    assert list(prefetched(iter(range(1000)), depth=2)) == list(range(1000))
    assert _producer_threads() == []


def test_an_error_arrives_after_the_items_before_it():
    def chunks():
        yield "a"
        yield "b"
        raise DataError("raw.txt, line 3: expected 40 columns, found 2")

    seen = []
    with pytest.raises(DataError, match="raw.txt, line 3: expected 40 columns"):
        for item in prefetched(chunks()):
            seen.append(item)
    assert seen == ["a", "b"]
    assert _producer_threads() == []


def test_stopping_early_stops_and_closes_the_producer():
    produced, closed = [], []

    def chunks():
        try:
            for index in range(10_000):
                produced.append(index)
                yield index
        finally:
            closed.append(True)

    stream = prefetched(chunks(), depth=1)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert closed == [True]
    assert len(produced) <= 5  # at most the handed-out items, the queued one and one in hand
    assert _producer_threads() == []


def test_a_pass_stopped_by_a_bad_row_ends_the_reading_and_parsing_threads(tmp_path):
    # Blocks of 64 bytes: the bad row is about 30 blocks in, while the block-reading thread
    # (TextSource.chunks) and the parsing thread (prepare's pass) are both running.
    rows = ["label\tc\tn", *[f"{i % 2}\tv{i % 7}\t{i}" for i in range(300)], "1\tv1\tseven"]
    path = write_text(tmp_path / "raw.tsv", [*rows, *rows[1:50]])
    config = generic_config(path, block_bytes=64, split="shuffled")
    with pytest.raises(DataError, match=r"raw.tsv, line 302: column n must hold an integer"):
        prepare(config, seed=0, data_root=tmp_path / "data", progress=False)
    assert _producer_threads() == []
    assert not list((tmp_path / "data").rglob("*.arrow"))
