"""Timing and memory measurement without TensorFlow."""

from __future__ import annotations

import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def peak_rss_bytes() -> int:
    """Peak resident memory of this process since it started, plus that of its waited children.

    Read from /proc/self/status (VmHWM), which starts afresh at exec: `ru_maxrss` of
    RUSAGE_SELF does not, so a probe started by a large parent would report the parent's peak.
    Children's peaks are added (an upper bound when they ran side by side with this process).
    """
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 + children
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 + children


@dataclass(frozen=True)
class StepStats:
    """Steady-state step timing from consecutive step end times."""

    steps: int
    median_seconds: float
    mean_seconds: float

    def per_second(self, items_per_step: int) -> float:
        """Throughput (items / s) at the median step time."""
        return items_per_step / self.median_seconds


def step_stats(step_end_times: Sequence[float], *, warmup: int) -> StepStats:
    """Step times from the end time of each step, skipping the first `warmup` intervals.

    Interval i is `end[i + 1] - end[i]`; the median resists occasional pauses (GC, other work).
    """
    intervals = [b - a for a, b in itertools.pairwise(step_end_times)]
    steady = intervals[warmup:]
    if not steady:
        raise ValueError(
            f"need more than warmup={warmup} step intervals, got {len(intervals)} "
            f"from {len(step_end_times)} step end times"
        )
    return StepStats(len(steady), statistics.median(steady), statistics.fmean(steady))


def interval_stats(interval_seconds: Sequence[float], *, warmup: int) -> StepStats:
    """Step timing from already computed per-step durations, skipping the first `warmup`."""
    steady = list(interval_seconds)[warmup:]
    if not steady:
        raise ValueError(f"need more than warmup={warmup} steps, got {len(interval_seconds)}")
    return StepStats(len(steady), statistics.median(steady), statistics.fmean(steady))


def run_json_subprocess(
    command: Sequence[str | os.PathLike[str]],
    *,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> dict:
    """Run a probe that prints one JSON object as its last stdout line; return that object.

    A failing probe raises `RuntimeError` with its stderr tail, so a benchmark never records a
    figure from a run that did not finish.
    """
    completed = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-30:])
        raise RuntimeError(
            f"benchmark probe {' '.join(str(p) for p in command)} exited "
            f"{completed.returncode}:\n{tail}"
        )
    lines = [line for line in completed.stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"benchmark probe printed no JSON result; stdout was:\n{completed.stdout}"
        )
    return json.loads(lines[-1])


def python_command(script: Path, *args: str | os.PathLike[str]) -> list[str]:
    """This interpreter running `script` with `args`."""
    return [sys.executable, str(script), *(str(arg) for arg in args)]
