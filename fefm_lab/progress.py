"""Progress for people: a bar on a terminal, plain lines in logs (training and preparation).

On a terminal (`progress: auto` and stderr is a TTY, or `progress: bar`) each epoch gets a `rich`
progress bar with percent done, samples/s, the epoch's running train log loss and the time left.
Elsewhere (CI, cluster job logs, `progress: lines`) a plain line with the same numbers is printed
every `every_seconds`, and once at the end of the epoch, so a log file shows steady progress
without carriage returns. `PassProgress` does the same for one pass of data preparation over a
raw file (rows, MB/s, time left from the bytes read).
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

PROGRESS_MODES = ("auto", "bar", "lines")


def format_duration(seconds: float) -> str:
    """`H:MM:SS` (`-:--:--` when unknown), as rich prints time left."""
    if not math.isfinite(seconds) or seconds < 0:
        return "-:--:--"
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class EpochProgress:
    """Interface: one `start` per epoch, `update` after steps, `finish` at the epoch's end."""

    def start(
        self, epoch: int, max_epochs: int, total_batches: int, done_batches: int = 0
    ) -> None: ...

    def update(self, batches: int, samples: int, train_logloss: float) -> None: ...

    def finish(self) -> None: ...

    def close(self) -> None: ...


class _Rates:
    """Samples/s and time left from this process's own start of the epoch (a resumed epoch
    starts counting at its first new batch)."""

    def begin(self, total_batches: int, done_batches: int) -> None:
        self.total = total_batches
        self.first_batch = done_batches
        self.start_time = time.perf_counter()
        self.batches = done_batches
        self.samples = 0

    def record(self, batches: int, samples: int) -> None:
        self.batches, self.samples = batches, samples

    def samples_per_second(self) -> float:
        elapsed = time.perf_counter() - self.start_time
        return self.samples / elapsed if elapsed > 0 else 0.0

    def seconds_left(self) -> float:
        new = self.batches - self.first_batch
        if new <= 0:
            return math.nan
        elapsed = time.perf_counter() - self.start_time
        return (self.total - self.batches) * elapsed / new


class PlainLines(EpochProgress):
    """One line every `every_seconds` (and at the epoch's end) to `stream`."""

    def __init__(self, stream: TextIO | None = None, every_seconds: float = 30.0) -> None:
        self.stream = stream or sys.stderr
        self.every_seconds = every_seconds
        self.rates = _Rates()
        self.loss = math.nan

    def start(self, epoch: int, max_epochs: int, total_batches: int, done_batches: int = 0):
        self.epoch, self.max_epochs = epoch, max_epochs
        self.rates.begin(total_batches, done_batches)
        self.last_line = time.perf_counter()

    def update(self, batches: int, samples: int, train_logloss: float) -> None:
        self.rates.record(batches, samples)
        self.loss = train_logloss
        now = time.perf_counter()
        if now - self.last_line >= self.every_seconds:
            self.last_line = now
            self._line()

    def finish(self) -> None:
        self._line()

    def _line(self) -> None:
        rates = self.rates
        percent = 100.0 * rates.batches / max(rates.total, 1)
        print(
            f"epoch {self.epoch}/{self.max_epochs} {percent:5.1f}% "
            f"batch {rates.batches:,}/{rates.total:,}  "
            f"{rates.samples_per_second():,.0f} samples/s  train logloss {self.loss:.5f}  "
            f"left {format_duration(rates.seconds_left())}",
            file=self.stream,
            flush=True,
        )


class RichBar(EpochProgress):
    """A `rich` progress bar per epoch (kept on screen when the epoch ends)."""

    def __init__(self, stream: TextIO | None = None, force_terminal: bool | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
        )

        console = Console(file=stream or sys.stderr, force_terminal=force_terminal)
        self.rates = _Rates()
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]} samples/s"),
            TextColumn("train logloss {task.fields[loss]}"),
            TextColumn("left {task.fields[left]}"),
            console=console,
            refresh_per_second=4,
        )
        self.task = None

    def start(self, epoch: int, max_epochs: int, total_batches: int, done_batches: int = 0):
        self.rates.begin(total_batches, done_batches)
        if self.task is None:
            self.progress.start()
        self.task = self.progress.add_task(
            "train",
            total=total_batches,
            completed=done_batches,
            epoch=f"{epoch}/{max_epochs}",
            rate="-",
            loss="-",
            left=format_duration(math.nan),
        )

    def update(self, batches: int, samples: int, train_logloss: float) -> None:
        self.rates.record(batches, samples)
        self.progress.update(
            self.task,
            completed=batches,
            rate=f"{self.rates.samples_per_second():,.0f}",
            loss=f"{train_logloss:.5f}",
            left=format_duration(self.rates.seconds_left()),
        )

    def finish(self) -> None:
        self.progress.refresh()

    def close(self) -> None:
        if self.task is not None:
            self.progress.stop()


def make_progress(
    mode: str, enabled: bool, every_seconds: float, stream: TextIO | None = None
) -> EpochProgress:
    """The reporter for `trainer.progress` (`auto`: a bar on a terminal, else plain lines)."""
    if not enabled:
        return EpochProgress()
    stream = stream or sys.stderr
    if mode not in PROGRESS_MODES:
        raise ValueError(f"progress must be one of {PROGRESS_MODES}, received {mode!r}")
    terminal = stream.isatty()
    if mode == "bar" or (mode == "auto" and terminal):
        return RichBar(stream, force_terminal=True if mode == "bar" else None)
    return PlainLines(stream, every_seconds)


class PassProgress:
    """One pass over a raw file (`fefm-lab prepare`): rows, rows/s, MB/s, and when the file's
    size is known, percent done and time left. A bar on a terminal, plain lines elsewhere."""

    def __init__(
        self, stream: TextIO | None = None, every_seconds: float = 5.0, bar: bool | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        self.every_seconds = every_seconds
        self.bar = self.stream.isatty() if bar is None else bar
        self._rich = None

    def start(self, label: str, total_bytes: int | None) -> None:
        self.label, self.total_bytes = label, total_bytes
        self.rows, self.bytes_done = 0, 0
        self.start_time = self.last_line = time.perf_counter()
        if self.bar:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[numbers]}"),
                console=Console(file=self.stream),
                refresh_per_second=4,
            )
            self._rich.start()
            self._task = self._rich.add_task(label, total=total_bytes, numbers="")

    def update(self, rows: int, bytes_done: int | None) -> None:
        self.rows = rows
        if bytes_done is not None:
            self.bytes_done = bytes_done
        now = time.perf_counter()
        if self._rich is not None:
            self._rich.update(self._task, completed=self.bytes_done, numbers=self._numbers())
        elif now - self.last_line >= self.every_seconds:
            self.last_line = now
            self._line()

    def finish(self) -> None:
        if self._rich is not None:
            self._rich.update(self._task, completed=self.bytes_done, numbers=self._numbers())
            self._rich.stop()
            self._rich = None
        else:
            self._line()

    def _numbers(self) -> str:
        elapsed = max(time.perf_counter() - self.start_time, 1e-9)
        text = (
            f"{self.rows:,} rows  {self.rows / elapsed:,.0f} rows/s  "
            f"{self.bytes_done / elapsed / 1e6:,.1f} MB/s"
        )
        if self.total_bytes and self.bytes_done:
            left = (self.total_bytes - self.bytes_done) * elapsed / self.bytes_done
            text += f"  left {format_duration(left)}"
        return text

    def _line(self) -> None:
        percent = ""
        if self.total_bytes:
            percent = f" {100.0 * self.bytes_done / self.total_bytes:5.1f}%"
        print(f"{self.label}{percent}  {self._numbers()}", file=self.stream, flush=True)
