"""The process memory figures the prepared manifest records, and giving free memory back."""

from __future__ import annotations

import json
import subprocess
import sys

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


_HEAP_PROBE = """
import ctypes, json, resource
import pyarrow  # imported by the call below: loaded first, so its pages count before
from fefm_lab.memory import release_free_memory, rss_bytes
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
block = 100 << 10  # below glibc's first mmap threshold (128 KiB): from the heap
blocks = [libc.malloc(block) for _ in range(400)]
for address in blocks:
    ctypes.memset(address, 1, block)
before = rss_bytes()
for address in blocks[::2]:  # every other one: each free block lies between two live ones
    libc.free(address)
freed = rss_bytes()
release_free_memory()
print(json.dumps({"before": before, "freed": freed, "released": rss_bytes(),
                  "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def test_release_gives_free_heap_pages_back_and_starts_no_process():
    done = subprocess.run(
        [sys.executable, "-c", _HEAP_PROBE], capture_output=True, text=True, check=True
    )
    figures = json.loads(done.stdout.splitlines()[-1])
    held = 200 * (100 << 10)  # 20 MiB freed, kept by glibc between live blocks
    assert figures["freed"] > figures["before"] - held / 4  # free() alone keeps most of it
    # malloc_trim(0) returns it
    assert figures["released"] < figures["freed"] - held / 2
    assert figures["children"] == 0  # no subprocess (its peak would count as the job's)
