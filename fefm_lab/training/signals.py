"""Graceful stop on SIGTERM / SIGINT / SIGUSR2: what Slurm, Ray, a container runtime and Ctrl-C
send. SIGUSR2 is Slurm's warning before a time limit (`--signal=USR2@SECONDS`, which submitit
asks for): the job checkpoints and stops, and its launcher requeues it
(`hydra_plugins.fefm_lab_launchers.slurm_launcher`).

While a job runs, `StopSignals` turns these signals into a `TrainingStopped` exception. Inside
`deferred()` (the training loop) the exception waits: the handler only records the signal, the
loop notices it after the current step, saves a checkpoint and raises. Outside (data preparation,
building the model) it is raised at once, like Ctrl-C's KeyboardInterrupt. A second SIGINT while
a stop is pending raises at once too: someone who presses Ctrl-C twice wants out now.

`TrainingStopped` subclasses KeyboardInterrupt so every "interrupted" path (Hydra, sweep
bookkeeping) treats it the same way, and `except Exception` never swallows it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)


class TrainingStopped(KeyboardInterrupt):
    """A stop signal ended the job; `exit_code` is the shell's 128 + signal number."""

    def __init__(self, signal_number: int, detail: str = "") -> None:
        self.signal_number = signal_number
        self.signal_name = signal.Signals(signal_number).name
        self.detail = detail
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        text = f"stopped by {self.signal_name}"
        return f"{text}: {self.detail}" if self.detail else text

    @property
    def exit_code(self) -> int:
        return 128 + self.signal_number


class StopSignals:
    """Context manager that installs the handlers and restores the previous ones on exit.

    Outside the main thread (where Python cannot install handlers) it does nothing and
    `requested` stays None.
    """

    def __init__(self, signals: tuple[int, ...] = STOP_SIGNALS) -> None:
        self.signals = signals
        self.requested: int | None = None
        self._deferring = 0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number in self.signals:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        repeated_interrupt = number == signal.SIGINT and self.requested is not None
        if self.requested is None:
            self.requested = number
        if not self._deferring or repeated_interrupt:
            raise TrainingStopped(number)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Inside: record signals for `check()` instead of raising (see the module docstring)."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        # A signal that arrived in the last moments of the block is not lost.
        self.check()

    def check(self, detail: str = "") -> None:
        """Raise TrainingStopped if a stop signal has arrived."""
        if self.requested is not None:
            raise TrainingStopped(self.requested, detail)
