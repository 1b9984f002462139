"""Run a task function under `@hydra.main` with the arguments of a `fefm-lab` subcommand."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from fefm_lab.config.compose import CONFIG_NAME, VERSION_BASE

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
    """Hand `arguments` to Hydra as its command line and run `task` (once, or per sweep job).

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
