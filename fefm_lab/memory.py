"""The process's resident memory, as the kernel counts it (Linux /proc/self/status)."""

from __future__ import annotations

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
