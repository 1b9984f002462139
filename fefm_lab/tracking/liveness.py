"""Is the process behind a RUNNING run still there? Host/pid tags, a heartbeat, the verdict.

Every run a process opens is tagged with the process's identity (`liveness_tags()`): host name,
pid, and on Linux the pid's start time in clock ticks since boot (so a pid reused by another
process after a reboot or a wrap-around is not taken for the original). While the run is open a
background thread refreshes the `heartbeat` tag (`keep_alive`). A RUNNING run is judged dead when

- it was started on this host and its pid is gone, a zombie, or now belongs to a process that
  started at another time; or
- it was started on another host (where no pid can be checked) and its last heartbeat (its start
  time, before the first one) is older than `HEARTBEAT_TIMEOUT_S`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

TAG_HOST = "host"
TAG_PID = "pid"
TAG_PID_START = "pid_start"  # /proc/<pid>/stat start time (clock ticks since boot); Linux only
TAG_HEARTBEAT = "heartbeat"  # unix time (seconds) of the last sign of life
TAG_SLURM_JOB = "slurm_job"  # the Slurm job (array task: JOBID_INDEX) the process runs in

# A live job refreshes its heartbeat every HEARTBEAT_EVERY_S. A run on another host is reaped
# after HEARTBEAT_TIMEOUT_S without one: ten missed beats, so a busy machine or a slow tracking
# server does not get a live run killed.
HEARTBEAT_EVERY_S = 60.0
HEARTBEAT_TIMEOUT_S = 600.0


def host_name() -> str:
    return socket.gethostname()


def process_start_ticks(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time since boot), or None where /proc is missing."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[19]


def _process_state(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()[0]


def liveness_tags() -> dict[str, str]:
    """Tags that identify this process, plus a first heartbeat."""
    tags = {TAG_HOST: host_name(), TAG_PID: str(os.getpid()), TAG_HEARTBEAT: f"{time.time():.3f}"}
    start = process_start_ticks(os.getpid())
    if start is not None:
        tags[TAG_PID_START] = start
    slurm_job = slurm_job_id()
    if slurm_job:
        tags[TAG_SLURM_JOB] = slurm_job
    return tags


def slurm_job_id() -> str | None:
    """The Slurm job this process runs in, as squeue and scancel name it (None outside one)."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def heartbeat(client: MlflowClient, run_id: str) -> None:
    """Record that the run's process is alive now."""
    client.set_tag(run_id, TAG_HEARTBEAT, f"{time.time():.3f}")


@contextmanager
def beating(beat: Callable[[], None], every_s: float, name: str) -> Iterator[None]:
    """Call `beat` from a daemon thread every `every_s` seconds while the block runs.

    A failed beat (tracking server briefly away) is retried at the next one: a run is only
    reaped after HEARTBEAT_TIMEOUT_S of silence, so one miss is not the job's failure.
    """
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            with suppress(Exception):
                beat()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def keep_alive(
    client: MlflowClient, run_id: str, every_s: float = HEARTBEAT_EVERY_S
) -> AbstractContextManager[None]:
    """Refresh the run's heartbeat while the block runs (see `beating`)."""
    return beating(lambda: heartbeat(client, run_id), every_s, f"heartbeat-{run_id[:8]}")


def pid_alive(pid: int, start_ticks: str | None = None) -> bool:
    """Whether `pid` runs on this host (and, when known, is the process that started then)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if _process_state(pid) == "Z":
        return False  # killed; only its exit status is waiting for the parent
    if start_ticks is not None:
        current = process_start_ticks(pid)
        if current is not None and current != start_ticks:
            return False
    return True


def death_reason(
    run: Run, *, now: float | None = None, timeout_s: float = HEARTBEAT_TIMEOUT_S
) -> str | None:
    """Why this RUNNING run's process is gone, or None when it is (or may be) alive.

    Runs without liveness tags (made before they existed) are judged by the heartbeat rule with
    their start time as the last sign of life.
    """
    tags = run.data.tags
    now = time.time() if now is None else now
    host, pid = tags.get(TAG_HOST), tags.get(TAG_PID)
    if host == host_name() and pid and pid.isdigit():
        if pid_alive(int(pid), tags.get(TAG_PID_START)):
            return None
        return f"process {pid} on host {host} is gone (found by process {os.getpid()})"
    try:
        last = float(tags[TAG_HEARTBEAT])
    except (KeyError, ValueError):
        last = (run.info.start_time or 0) / 1000.0
    silent = now - last
    if silent <= timeout_s:
        return None
    where = f"process {pid} on host {host}" if host else "its process"
    return f"no heartbeat from {where} for {silent:.0f} s (timeout {timeout_s:.0f} s)"
