"""`prefetched`: chunks produced one ahead in a thread arrive in order, errors arrive where they
happened, and a consumer that stops early stops (and closes) the producer."""

from __future__ import annotations

import threading

import pytest

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
