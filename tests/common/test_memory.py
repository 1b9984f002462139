"""The process memory figures the prepared manifest records."""

from __future__ import annotations

import numpy as np

from fefm_lab.memory import peak_rss_bytes, rss_bytes

MIB = 1 << 20


def test_resident_memory_follows_a_touched_allocation_and_the_peak_keeps_it():
    before = rss_bytes()
    block = np.ones(96 * MIB, dtype=np.uint8)  # every page written: resident
    holding = rss_bytes()
    assert holding - before >= 90 * MIB
    del block
    assert rss_bytes() < holding - 64 * MIB  # a large block goes back to the kernel on free
    # the kernel folds per-thread page counts into the peak in batches: a few pages of slack
    assert peak_rss_bytes() >= holding - 4 * MIB
