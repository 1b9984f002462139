"""Run a task under Hydra: a sweep through `@hydra.main`, a single run on the config composed once.

A sweep (`fefm-lab run -m`) hands its arguments to `@hydra.main`, whose launcher composes each job
(on whatever host runs it: that is the job's one composition). A single run is composed once by
the command line (`fefm_lab.config.compose`), checked and typed from that composition, and run
by `run_composed` the way `@hydra.main` runs one job (run directory, `.hydra/` record,
callbacks), without `@hydra.main` composing it twice more.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import run_job
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, OmegaConf, read_write

from fefm_lab.config.compose import CONFIG_NAME, VERSION_BASE, config_dir

T = TypeVar("T")

# conf/hydra/launcher/ray.yaml and submitit_slurm.yaml deliberately share their names with the
# plugins' schemas (users type hydra/launcher=ray, =submitit_slurm); Hydra merges each with its
# schema and warns that this matching is deprecated.
warnings.filterwarnings(
    "ignore",
    message=r"\s*'hydra/launcher/(ray|submitit_slurm)' is validated against ConfigStore schema",
)


def launch_hydra(
    arguments: Sequence[str],
    task: Callable[[DictConfig], Any],
    config_path: str,
    *,
    raise_errors: bool = False,
) -> None:
    """Hand `arguments` to Hydra as its command line and run `task` per job (a sweep: `-m`).

    `@hydra.main` parses `sys.argv` itself, so it is set for the call and restored after. With
    `raise_errors`, Hydra raises what fails (the documented HYDRA_FULL_ERROR switch) instead of
    printing it and exiting 1, so the caller can close the sweep and say what went wrong.
    """
    import hydra

    main = hydra.main(version_base=VERSION_BASE, config_path=config_path, config_name=CONFIG_NAME)
    saved_argv, saved_flag = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = ["fefm-lab", *arguments]
    if raise_errors:
        os.environ["HYDRA_FULL_ERROR"] = "1"
    GlobalHydra.instance().clear()
    try:
        main(task)()
    finally:
        sys.argv = saved_argv
        if raise_errors:
            if saved_flag is None:
                os.environ.pop("HYDRA_FULL_ERROR", None)
            else:
                os.environ["HYDRA_FULL_ERROR"] = saved_flag
        GlobalHydra.instance().clear()


class _Callbacks:
    """The configured `hydra.callbacks`, told of the run as Hydra tells them: a callback that
    raises is a warning, as in Hydra."""

    def __init__(self, cfg: DictConfig) -> None:
        from hydra.utils import instantiate

        configured = OmegaConf.select(cfg, "hydra.callbacks") or {}
        self.callbacks = [instantiate(params) for params in configured.values()]

    def _notify(self, hook: str, reverse: bool = False, **kwargs: Any) -> None:
        for callback in reversed(self.callbacks) if reverse else self.callbacks:
            try:
                getattr(callback, hook)(**kwargs)
            except Exception as error:
                warnings.warn(
                    f"Callback {type(callback).__name__}.{hook} raised "
                    f"{type(error).__name__}: {error}",
                    stacklevel=2,
                )

    def on_run_start(self, **kwargs: Any) -> None:
        self._notify("on_run_start", **kwargs)

    def on_run_end(self, **kwargs: Any) -> None:
        self._notify("on_run_end", reverse=True, **kwargs)

    def on_job_start(self, **kwargs: Any) -> None:
        self._notify("on_job_start", **kwargs)

    def on_job_end(self, **kwargs: Any) -> None:
        self._notify("on_job_end", reverse=True, **kwargs)


def run_composed(cfg: DictConfig, task: Callable[[DictConfig], T]) -> T:
    """Run `task` once on `cfg` (composed with its `hydra` node) as Hydra runs a single job:
    `hydra.run.dir` made, the config, Hydra's config and the overrides saved under its `.hydra/`,
    the callbacks told. What `task` raises is raised here."""
    with read_write(cfg.hydra):
        if cfg.hydra.mode is None:
            cfg.hydra.mode = RunMode.RUN
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(
            version_base=VERSION_BASE, config_dir=config_dir(), job_name="fefm-lab"
        ):
            callbacks = _Callbacks(cfg)
            callbacks.on_run_start(config=cfg, config_name=CONFIG_NAME)
            context = HydraContext(
                config_loader=GlobalHydra.instance().config_loader(),
                callbacks=callbacks,  # type: ignore[arg-type]  # the hooks Hydra calls
            )
            ran = run_job(
                task_function=task,
                config=cfg,
                job_dir_key="hydra.run.dir",
                job_subdir_key=None,
                hydra_context=context,
            )
            callbacks.on_run_end(config=cfg, config_name=CONFIG_NAME, job_return=ran)
            return ran.return_value  # raises what the task raised
    finally:
        GlobalHydra.instance().clear()
