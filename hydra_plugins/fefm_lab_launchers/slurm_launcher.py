"""fefm-lab's Slurm launcher (`hydra/launcher=submitit_slurm`): each sweep job is a Slurm job
(a submitit job array), on hydra-submitit-launcher's keys.

Where it differs from the plugin, for what a Slurm user meets:

- **Time limit or preemption warning (SIGUSR2).** Slurm sends it `signal_delay_s` before the
  limit (submitit submits with `--signal=USR2@signal_delay_s`). The job's own stop handling
  (`fefm_lab.training.signals`) takes it first: the loop ends its step, saves the checkpoint and
  marks the run KILLED. Then submitit's handler does what it is for: pickles this call again,
  `scontrol requeue`s the job while `max_num_timeout` allows, and exits. The requeued job
  continues the same MLflow run from the checkpoint. (submitit's handler alone would requeue
  from wherever the Python code was, without a checkpoint, leaving the run RUNNING.)
- **SIGTERM** (`scontrol requeue`, preemption with requeue, `scancel`): the job checkpoints and
  marks its run KILLED; a requeued job resumes it, a cancelled one stays KILLED.
- **Every job's end is collected without sacct** (a Slurm without accounting has none): from the
  result submitit writes, else from `squeue`. A job that ended without a result (cancelled,
  failed, timed out too often) comes back as a FAILED job naming its Slurm state, its run marked
  KILLED; the other jobs run to their end.
- **Stopping the launching process** (Ctrl-C, SIGTERM, SIGHUP) cancels the sweep's Slurm jobs
  that have not ended, and says so; the sweep's runs end KILLED and repeating the command reruns
  what did not finish.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides, setup_globals
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

from fefm_lab.cluster.slurm import FINAL_STATES, cancel_jobs, queue_states
from fefm_lab.sweep.job import SweepJobError
from fefm_lab.training.signals import TrainingStopped
from hydra_plugins.fefm_lab_launchers.lost_jobs import lost_job_return

log = logging.getLogger(__name__)

# How often the launching process looks at its jobs, and how long a job Slurm calls COMPLETED
# may take to show its result file (shared filesystems show new files late).
POLL_S = 2.0
RESULT_GRACE_S = 30.0
# How long a stopped sweep waits for its cancelled jobs to checkpoint and record their runs.
CANCEL_WAIT_S = 60.0


class SlurmJobLost(SweepJobError):
    """A job's Slurm job ended without a result (its run is marked KILLED); the sweep ends
    FAILED after every other job has returned."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """One job, inside its Slurm job. A SIGUSR2 stop (the run checkpointed, marked KILLED)
        goes on to submitit's handler: checkpoint this call, requeue, exit."""
        try:
            return super().__call__(*args, **kwargs)
        except TrainingStopped as stopped:
            if stopped.signal_number == signal.SIGUSR2:
                requeue = signal.getsignal(signal.SIGUSR2)  # submitit's, restored by the job
                if callable(requeue):
                    requeue(signal.SIGUSR2, None)
            raise

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        assert self.config is not None
        jobs = self._submit(job_overrides, initial_job_idx)
        try:
            return self._collect(jobs, [list(o) for o in job_overrides])
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM / SIGHUP (TrainingStopped)
            self._cancel(jobs)
            raise

    def _submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
        """The plugin's submission: one submitit job array with the plugin's parameters."""
        import submitit

        init = {"folder": self.params["submitit_folder"]}
        if "max_num_timeout" in self.params:
            init["slurm_max_num_timeout"] = self.params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster="slurm", **init)
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                key if key in shared else f"slurm_{key}": value
                for key, value in self.params.items()
                if key not in ("max_num_timeout", "submitit_folder")
            }
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        calls = []
        for number, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{number} : {' '.join(filter_overrides(overrides))}")
            calls.append(
                (list(overrides), "hydra.sweep.dir", number, f"job_id_for_{number}",
                 Singleton.get_state())
            )  # fmt: skip
        jobs = executor.map_array(self, *zip(*calls, strict=True))
        _say(
            f"submitted {len(jobs)} Slurm job(s): {' '.join(j.job_id for j in jobs)} "
            f"(outputs in {sweep_dir})"
        )
        return jobs

    def _collect(self, jobs: list, overrides: list[list[str]]) -> list[JobReturn]:
        """Wait for every job; each one's JobReturn, a FAILED one for a job lost on the way."""
        results: dict[int, JobReturn] = {}
        completed_at: dict[int, float] = {}
        ended_seen: dict[int, int] = {}  # a state passing by (a requeue's) is not the end
        while len(results) < len(jobs):
            waiting = [i for i in range(len(jobs)) if i not in results]
            states = queue_states([jobs[i].job_id for i in waiting])
            for i in waiting:
                job = jobs[i]
                if job.paths.result_pickle.exists():
                    results[i] = self._result(job, overrides[i])
                    continue
                if states is None:  # squeue did not answer: ask again next time
                    continue
                state = states.get(job.job_id, "GONE")
                if state == "COMPLETED":  # its result file may not be visible here yet
                    first = completed_at.setdefault(i, time.monotonic())
                    if time.monotonic() - first < RESULT_GRACE_S:
                        continue
                if state in FINAL_STATES or state == "GONE":
                    ended_seen[i] = ended_seen.get(i, 0) + 1
                    if ended_seen[i] >= 2:
                        results[i] = self._lost(job, overrides[i], _describe(state))
                else:
                    ended_seen.pop(i, None)
            if len(results) < len(jobs):
                time.sleep(POLL_S)
        return [results[i] for i in range(len(jobs))]

    def _result(self, job, overrides: list[str]) -> JobReturn:
        try:
            return job.results()[0]
        except Exception as error:  # the job's Python failed outside Hydra's job (submitit's)
            last = (str(error).strip().splitlines() or [""])[-1]
            return self._lost(job, overrides, f"ended with {type(error).__name__}: {last}")

    def _lost(self, job, overrides: list[str], what: str) -> JobReturn:
        """A FAILED JobReturn for a job without a result; its run (if any) marked KILLED."""
        assert self.hydra_context is not None and self.config is not None
        setup_globals()
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        return lost_job_return(
            overrides, sweep_config, f"Slurm job {job.job_id} {what}", SlurmJobLost
        )

    def _cancel(self, jobs: list) -> None:
        """scancel the jobs that have not ended; wait a while for them to stop (each job
        checkpoints and records its run KILLED on the SIGTERM scancel sends)."""
        pending = [j.job_id for j in jobs if not j.paths.result_pickle.exists()]
        states = queue_states(pending)
        if states is not None:  # else cancel them all: scancel ignores ended jobs
            pending = [i for i in pending if i in states and states[i] not in FINAL_STATES]
        if not pending:
            return
        _say(f"cancelling {len(pending)} Slurm job(s) of the stopped sweep: {' '.join(pending)}")
        complaint = cancel_jobs(pending)
        if complaint:
            _say(f"scancel: {complaint}")
            return
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            states = queue_states(pending)
            if states is not None and all(s in FINAL_STATES for s in states.values()):
                break
            time.sleep(POLL_S)


def _describe(state: str) -> str:
    if state == "GONE":
        return "is no longer listed by Slurm and left no result"
    return f"ended {state} without a result"
