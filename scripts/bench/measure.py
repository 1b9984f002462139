"""The one timing and memory helper of the benchmarks (no TensorFlow import).

Every figure is a wall time of calls that block until their result exists (`.numpy()` on a
TensorFlow result). Warm-up calls (tracing, XLA compilation, caches) are run and left out.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def time_calls(call: Callable[[], object], *, repeats: int, warmup: int) -> list[float]:
    """Wall seconds of each of `repeats` calls of `call()`, after `warmup` untimed calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, received {repeats!r}")
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def median_seconds(call: Callable[[], object], *, repeats: int, warmup: int) -> float:
    """Median of `time_calls`: resists occasional pauses (GC, other work on the machine)."""
    return statistics.median(time_calls(call, repeats=repeats, warmup=warmup))


def interleaved_median_seconds(
    calls: dict[str, Callable[[], object]], *, repeats: int, warmup: int
) -> dict[str, float]:
    """Median wall seconds of each call, taking the calls in turn (every other round in reverse
    order) so that a change in the machine's load falls on all of them alike: side by side."""
    return {name: wall for name, (wall, _) in interleaved_medians(calls, repeats, warmup).items()}


def interleaved_medians(
    calls: dict[str, Callable[[], object]], repeats: int, warmup: int
) -> dict[str, tuple[float, float]]:
    """(median wall seconds, median CPU seconds of this process) of each call, interleaved as in
    `interleaved_median_seconds`. On a machine other jobs load, the CPU time (every thread of
    this process) is the work a call did, which the wall time mixes with waiting for a core."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, received {repeats!r}")
    for call in calls.values():
        for _ in range(warmup):
            call()
    names = list(calls)
    seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            start, cpu = time.perf_counter(), time.process_time()
            calls[name]()
            seconds[name].append((time.perf_counter() - start, time.process_time() - cpu))
    return {
        name: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
        for name, values in seconds.items()
    }


def mean_seconds(call: Callable[[], object], *, repeats: int, warmup: int) -> float:
    """Mean of `time_calls`: the sustained rate, pauses included (an input pipeline's refills)."""
    return statistics.fmean(time_calls(call, repeats=repeats, warmup=warmup))


def best_seconds(call: Callable[[], object], *, repeats: int, warmup: int) -> float:
    """Fastest of `time_calls`: a ceiling (the machine's matmul rate), not a typical figure."""
    return min(time_calls(call, repeats=repeats, warmup=warmup))


@dataclass(frozen=True)
class StepStats:
    """Steady-state step timing from per-step durations."""

    steps: int
    median_seconds: float
    mean_seconds: float

    def per_second(self, items_per_step: int) -> float:
        """Throughput (items / s) at the median step time."""
        return items_per_step / self.median_seconds


def interval_stats(interval_seconds: Sequence[float], *, warmup: int) -> StepStats:
    """Step timing from already measured per-step durations, skipping the first `warmup`."""
    steady = list(interval_seconds)[warmup:]
    if not steady:
        raise ValueError(f"need more than warmup={warmup} steps, got {len(interval_seconds)}")
    return StepStats(len(steady), statistics.median(steady), statistics.fmean(steady))


def peak_rss_bytes() -> int:
    """Peak resident memory of this process since it started (`fefm_lab.memory.peak_rss_bytes`:
    VmHWM, which starts afresh at exec, so a probe started by a large parent does not report the
    parent's peak), plus that of its waited children (an upper bound when they ran side by side
    with this process)."""
    from fefm_lab import memory

    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return memory.peak_rss_bytes() + children


def module_command(
    module: str, *args: str | os.PathLike[str], python: str | os.PathLike[str] | None = None
) -> list[str]:
    """`python -m module args...` (this interpreter unless `python` is given); run from ROOT."""
    return [str(python or sys.executable), "-m", module, *(str(arg) for arg in args)]


def run_json_subprocess(
    command: Sequence[str | os.PathLike[str]],
    *,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> dict:
    """Run a worker from the repository root; return the JSON object of its last `{` line.

    A failing worker raises `RuntimeError` with its stderr tail, so a benchmark never records a
    figure from a run that did not finish.
    """
    completed = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-30:])
        raise RuntimeError(
            f"benchmark worker {' '.join(str(p) for p in command)} exited "
            f"{completed.returncode}:\n{tail}"
        )
    lines = [line for line in completed.stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"benchmark worker printed no JSON result; stdout was:\n{completed.stdout}"
        )
    return json.loads(lines[-1])
