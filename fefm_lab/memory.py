"""The process's resident memory, as the kernel counts it (Linux /proc/self/status)."""

from __future__ import annotations

import ctypes
import resource
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int | None:
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def peak_rss_bytes() -> int:
    """Peak resident set of this process since it started (VmHWM, a running maximum that starts
    afresh at exec); `ru_maxrss` where /proc is missing (it can carry a parent's peak over)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * 1024


def rss_bytes() -> int | None:
    """Resident set of this process now (VmRSS); None where /proc is missing."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def _load_malloc_trim():
    """glibc's `malloc_trim`, or None (another C library). Looked up among the symbols the
    process already has (`CDLL(None)`): `ctypes.util.find_library` would start a subprocess,
    whose peak memory (a fork of this process) a benchmark adds to its own."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def release_free_memory() -> None:
    """Give memory the allocators hold free back to the kernel, between phases of a long job.

    glibc keeps freed blocks in its heaps for reuse (numpy's arrays of a chunk come from there,
    not from mmap, once the first large free raised its mmap threshold), and pyarrow's mimalloc
    keeps freed pages a while: both count as resident. `malloc_trim(0)` returns every whole free
    page of every heap (not only the top), `release_unused` the memory pool's free pages. A few
    milliseconds; the next allocations fault fresh pages in, so call it at phase ends, not per
    chunk."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
