"""`fefm-lab run -m`: validate, hand the sweep to Hydra, and close it on every way out.

The parent run is opened and ended by the `SweepLifecycle` callback inside Hydra. This side makes
sure that however the launcher returns, the sweep ends with a status and a reason:

| way out | parent run | children still RUNNING | exit |
|---|---|---|---|
| every job returned | FINISHED, or FAILED if a configuration failed | none | 0 / 1 |
| a job could not reach the tracking store or its parent | FAILED | FAILED | 1 |
| the launcher failed before any job started (bad `hydra.launcher.*`) | FAILED | none | 2 |
| the launcher failed later | FAILED | FAILED | 1 |
| Ctrl-C (SIGINT) | KILLED | KILLED | 130 |
| SIGTERM / SIGHUP to the launching process | KILLED | KILLED | 128 + signal |
| a job in this process calls `sys.exit` (its own signal handling) | KILLED | KILLED | its code |

Before a KILLED sweep marks its children, job processes of its own on this host that still run
(submitit_local starts them apart from the launcher) get SIGTERM and a moment to stop and record
themselves (`stop_local_jobs`).

A SIGKILLed launcher cannot close anything: the next start of the same sweep reaps the runs
whose process is gone (`TrackingStore.reap_dead_runs`), and is refused while a live launch of
the same sweep has its parent open.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from mlflow.exceptions import MlflowException

from fefm_lab.errors import ConfigError
from fefm_lab.sweep.callback import end_sweep
from fefm_lab.sweep.finish import summarize_sweep
from fefm_lab.sweep.job import SweepJobError, run_sweep_job
from fefm_lab.sweep.parent import close_in_flight, parent_of
from fefm_lab.sweep.plan import SweepPlan, plan_sweep
from fefm_lab.tracking.liveness import (
    HEARTBEAT_EVERY_S,
    TAG_HOST,
    TAG_PID,
    TAG_PID_START,
    beating,
    heartbeat,
    host_name,
    pid_alive,
)
from fefm_lab.tracking.outbox import (
    END_RETRIES,
    END_TIMEOUT_S,
    UNREACHABLE_EXIT_CODE,
    is_unreachable,
    quick_requests,
    why_unreachable,
)
from fefm_lab.tracking.store import TrackingStore
from fefm_lab.training.signals import TrainingStopped
from fefm_lab.uris import masked_uri

# How long a stopped sweep waits for its jobs on this host to record their own end.
STOP_WAIT_S = 60.0
# Signals that end the launching process (besides SIGINT, which Python raises as Ctrl-C).
TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def signals_raise() -> Iterator[None]:
    """Turn SIGTERM / SIGHUP into `TrainingStopped` (a KeyboardInterrupt) while the block runs.

    The same exception a job's own stop handling raises: a job running in this process (the
    basic launcher) records its run KILLED on its way out, as for Ctrl-C.
    """

    def handler(signum: int, frame) -> None:
        raise TrainingStopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in TERMINATING_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Let the sweep be closed without a second Ctrl-C or SIGTERM cutting it short."""
    sigs = (signal.SIGINT, *TERMINATING_SIGNALS)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in sigs}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def refuse_if_running(store: TrackingStore, name: str) -> None:
    """Reap the sweep's runs whose process is gone, then refuse if it is still running.

    A SIGKILLed launch leaves its parent and children RUNNING; they become KILLED here, with
    the reason. A parent that is RUNNING after that belongs to a live launch of the same sweep
    (on this host, its process exists; on another, its heartbeat is recent): a second launch
    would mix its runs into that one.
    """
    for run_id, why in store.reap_dead_runs(sweep=name):
        _say(f"run {run_id} of sweep {name!r} marked KILLED: {why}")
    parent = store.sweep_parent(name)
    if parent is not None and parent.info.status == "RUNNING":
        tags = parent.data.tags
        where = f"process {tags.get(TAG_PID, '?')} on host {tags.get(TAG_HOST, '?')}"
        raise ConfigError(
            f"sweep {name!r} is running now (parent run {parent.info.run_id}, {where}); "
            "wait for it to end, or give this launch another sweep.name"
        )


def parent_heartbeat(
    store: TrackingStore, invocation: str, every_s: float = HEARTBEAT_EVERY_S
) -> AbstractContextManager[None]:
    """Refresh the heartbeat of this launch's parent run while the block runs.

    What tells another host that the launch is alive (on this host the pid tells it). The parent
    is opened inside Hydra, so each beat looks it up by the launch's token.
    """

    def beat() -> None:
        parent = parent_of(store, invocation)
        if parent is not None:
            heartbeat(store.client, parent.info.run_id)

    return beating(beat, every_s, "sweep-heartbeat")


def close_sweep(store: TrackingStore, invocation: str, status: str, reason: str) -> None:
    """End this invocation's parent run and its RUNNING children with `status` and `reason`.

    With the tracking server away this says so in one line and leaves them RUNNING: the next
    start of the sweep reaps them (their processes are gone) and resumes the parent.
    """
    try:
        with quick_requests(retries=END_RETRIES, timeout_s=END_TIMEOUT_S):
            _close_sweep(store, invocation, status, reason)
    except MlflowException as error:
        if not is_unreachable(error):
            raise
        _say(
            f"{reason}; tracking server {masked_uri(store.tracking_uri)} unreachable "
            f"({why_unreachable(error)}): the sweep's runs stay open until its next start"
        )


def _close_sweep(store: TrackingStore, invocation: str, status: str, reason: str) -> None:
    with signals_ignored():
        parent = parent_of(store, invocation)
        if parent is None or parent.info.status != "RUNNING":
            _say(f"{reason} (no sweep parent run was open)")
            return
        parent_id = parent.info.run_id
        if status == "KILLED":
            stop_local_jobs(store, parent_id)
        closed = close_in_flight(store, parent_id, status, reason)
        end_sweep(store, parent_id, status=status, reason=reason)
        _say(f"sweep parent run {parent_id} and {len(closed)} running job run(s) marked {status}")


def stop_local_jobs(
    store: TrackingStore, parent_run_id: str, timeout_s: float = STOP_WAIT_S
) -> list[int]:
    """SIGTERM the processes of the parent's RUNNING jobs on this host; the pids signalled.

    Launchers that start jobs as processes of their own (submitit_local) leave them running when
    the launching process stops. A job stops on SIGTERM after its current step, saves its
    checkpoint and records itself KILLED; this waits up to `timeout_s` for that. Jobs in this
    process (basic launcher) stop with it; jobs on other hosts are their launcher's to stop (Ray
    ends a driver's tasks with it; a Slurm job runs on until it ends or is cancelled).
    """
    signalled: dict[int, str] = {}
    for child in store.children(parent_run_id):
        tags = child.data.tags
        pid = tags.get(TAG_PID, "")
        if child.info.status != "RUNNING" or tags.get(TAG_HOST) != host_name():
            continue
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        if pid_alive(int(pid), tags.get(TAG_PID_START)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
                signalled[int(pid)] = child.info.run_id
    deadline = time.monotonic() + timeout_s
    while signalled and time.monotonic() < deadline:
        time.sleep(0.5)
        for pid, run_id in list(signalled.items()):
            if store.client.get_run(run_id).info.status != "RUNNING" or not pid_alive(pid):
                del signalled[pid]
    return list(signalled)


def _jobs_started(store: TrackingStore, invocation: str, since_ms: int) -> bool:
    parent = parent_of(store, invocation)
    if parent is None:
        return False
    return any((c.info.start_time or 0) >= since_ms for c in store.children(parent.info.run_id))


def _launch(
    plan: SweepPlan,
    overrides: Sequence[str],
    store: TrackingStore,
    invocation: str,
    data: Sequence[str],
) -> None:
    from fefm_lab.config.compose import config_dir
    from fefm_lab.hydra_app import launch_hydra

    # quoted: a generated name holds = and ,
    extra = [f"sweep.name='{plan.name}'", f"sweep.invocation={invocation}", *data]
    if plan.threads is not None and plan.configs[0].get("threads") is None:
        extra.append(f"threads={plan.threads}")
    with signals_raise(), parent_heartbeat(store, invocation):
        launch_hydra(
            ["--multirun", *overrides, *extra], run_sweep_job, config_dir(), raise_errors=True
        )


def _conclude(store: TrackingStore, invocation: str, ui_port: int) -> int:
    """After Hydra returned: end the parent if the callback could not; exit 1 on failures."""
    parent = parent_of(store, invocation)
    if parent is None:
        _say("error: the sweep's parent run was never opened (see the warning above)")
        return 1
    parent_id = parent.info.run_id
    if parent.info.status == "RUNNING":  # on_multirun_end was skipped or failed
        summary = end_sweep(store, parent_id, ui_port=ui_port)
    else:
        summary = summarize_sweep(store, parent_id)
    if summary.failed:
        _say(f"{len(summary.failed)} run(s) failed:")
        for row in summary.failed:
            _say(f"  {row['run']} ({row['run_id']}): {row['reason']}")
        return 1
    return 0


def run_sweep(overrides: Sequence[str]) -> int:
    """Run the sweep the overrides describe; the command's exit code (see the module docstring)."""
    from fefm_lab.cluster.preflight import prepare_cluster_sweep
    from fefm_lab.runner import store_for

    plan = plan_sweep(overrides)
    # settings the launcher's jobs cannot use are refused; each dataset is prepared once, here
    data = prepare_cluster_sweep(plan.configs, plan.placement)
    store = store_for(plan.configs[0])  # database and experiment exist before any job starts
    refuse_if_running(store, plan.name)
    invocation = uuid.uuid4().hex
    _say(f"sweep {plan.name!r}: {plan.described} ({plan.launcher.rsplit('.', 1)[-1]})")
    started_ms = int(time.time() * 1000)
    try:
        _launch(plan, plan.overrides, store, invocation, data)
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or a stop signal (TrainingStopped)
        number = getattr(interrupt, "signal_number", signal.SIGINT)
        if number == signal.SIGINT:
            reason = "sweep interrupted (Ctrl-C)"
        else:
            reason = f"sweep stopped by {signal.Signals(number).name}"
        _say(reason)
        close_sweep(store, invocation, "KILLED", reason)
        return 128 + number
    except SystemExit as exiting:  # a job's own signal handling ended the process
        close_sweep(store, invocation, "KILLED", f"sweep ended by exit({exiting.code}) in a job")
        raise
    except SweepJobError as error:
        close_sweep(store, invocation, "FAILED", str(error))
        _say(f"error: {error}")
        return 1
    except Exception as error:  # the launcher's own failure: reported, sweep closed
        launcher = plan.launcher.rsplit(".", 1)[-1]
        reason = f"launcher {launcher} failed: {type(error).__name__}: {error}"
        started = _jobs_started(store, invocation, started_ms)
        close_sweep(store, invocation, "FAILED", reason)
        if not started:
            raise ConfigError(
                f"{reason}\n(no job started: check hydra/launcher and the hydra.launcher.* "
                "overrides)"
            ) from None
        _say(f"error: {reason}")
        return 1
    try:
        with quick_requests(retries=END_RETRIES, timeout_s=END_TIMEOUT_S):
            return _conclude(store, invocation, int(plan.configs[0]["mlflow"]["ui_port"]))
    except MlflowException as error:
        if not is_unreachable(error):
            raise
        # the parent stays RUNNING with this (ended) process's pid: the next start of the same
        # sweep reaps and resumes it, skips the jobs that finished, continues the others
        _say(
            f"error: tracking server {masked_uri(store.tracking_uri)} unreachable at the sweep's "
            f"end ({why_unreachable(error)}); its parent run and summary stay open: start the "
            "same sweep again when the server is back to finish them"
        )
        return UNREACHABLE_EXIT_CODE
