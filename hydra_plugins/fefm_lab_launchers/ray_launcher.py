"""fefm-lab's Ray launcher (`hydra/launcher=ray`): each sweep job is a Ray task.

It takes the hydra-ray-launcher plugin's keys (`ray.init.*` -> `ray.init`, `ray.remote.*` ->
`ray.remote`) and differs from the plugin's released version where a cluster user would trip:

- `ray.init` gets only the keys that are set: no `object_store_memory` is injected (Ray refuses
  it when joining an existing cluster by address; hydra issue 2893).
- Every job's result is collected. A job whose worker died (killed, out of memory, its node lost)
  comes back as a FAILED job naming the cause, and its MLflow run is marked KILLED; the other jobs
  run to their end (the plugin stops at the first lost job, and Ray then cancels the rest when
  the launching process exits).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from fefm_lab.sweep.job import SweepJobError
from hydra_plugins.fefm_lab_launchers.lost_jobs import lost_job_return

log = logging.getLogger(__name__)


class WorkerLost(SweepJobError):
    """A job's Ray worker died before the job returned (its run is marked KILLED); the sweep
    ends FAILED after every other job has returned."""


def _set_options(node: DictConfig | None) -> dict[str, Any]:
    """The node's keys whose value is not null (null = leave it to Ray)."""
    if not node:
        return {}
    values = OmegaConf.to_container(node, resolve=True)
    return {key: value for key, value in values.items() if value is not None}


def _run_in_worker(
    hydra_context: HydraContext,
    sweep_config: DictConfig,
    task_function: TaskFunction,
    singleton_state: dict[Any, Any],
) -> JobReturn:
    """One job inside a Ray worker: Hydra's state as the launching process had it, then the job."""
    setup_globals()
    Singleton.set_state(singleton_state)
    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


class RayLauncher(Launcher):
    def __init__(self, ray: DictConfig) -> None:
        self.ray_cfg = ray
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        import ray

        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if not ray.is_initialized():
            ray.init(**_set_options(self.ray_cfg.get("init")))
        options = _set_options(self.ray_cfg.get("remote"))
        wrap = ray.remote(**options) if options else ray.remote
        remote_job = wrap(_run_in_worker)
        log.info(f"Ray launcher: {len(job_overrides)} jobs, sweep output dir {sweep_dir}")

        submitted = []
        for number, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{number} : {' '.join(filter_overrides(overrides))}")
            sweep_config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides)
            )
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = f"ray_{number}"
                sweep_config.hydra.job.num = number
            reference = remote_job.remote(
                hydra_context=self.hydra_context,
                sweep_config=sweep_config,
                task_function=self.task_function,
                singleton_state=Singleton.get_state(),
            )
            submitted.append((list(overrides), sweep_config, reference))

        results = []
        for overrides, sweep_config, reference in submitted:  # every job, lost ones included
            try:
                results.append(ray.get(reference))
            except ray.exceptions.RayError as error:
                results.append(_lost_job(overrides, sweep_config, error))
        return results


def _lost_job(overrides: list[str], sweep_config: DictConfig, error: Exception) -> JobReturn:
    """A FAILED JobReturn for a job whose worker died; its MLflow run (if any) marked KILLED."""
    cause = str(error).strip().splitlines()[0] if str(error).strip() else ""
    reason = f"Ray worker died ({type(error).__name__}: {cause})"
    return lost_job_return(overrides, sweep_config, reason, WorkerLost)
