"""Hydra composition: command-line overrides -> the config every job sees.

Everything here turns Hydra's and OmegaConf's complaints into ConfigErrors that name the key and
say what it takes (the command line prints them and exits 2, before any data is read).
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fefm_lab.config.job_config import JobConfig, job_config
from fefm_lab.config.registry import register_configs
from fefm_lab.config.validation import explain_omegaconf_error, validate_config
from fefm_lab.errors import ConfigError

# The schemas and the ablation options are in the ConfigStore before anything composes (Hydra's
# launchers hand the ConfigStore to their workers with the rest of Hydra's state).
register_configs()

VERSION_BASE = "1.3"  # the Hydra version whose defaults the configs are written for
CONFIG_NAME = "config"  # conf/config.yaml, the primary config


def config_dir() -> str:
    """The directory of the packaged configs (`fefm_lab.conf`, which is `conf/` in a checkout).

    An editable install made before `conf/` had files does not map `fefm_lab.conf`; the source
    checkout's `conf/` next to the package is then the same directory.
    """
    try:
        return str(importlib.resources.files("fefm_lab.conf"))
    except ModuleNotFoundError:
        return str(Path(__file__).resolve().parents[2] / "conf")


def hydra_message(error: BaseException) -> str:
    """A user-facing message for a composition error: the key and what it takes, if we know."""
    explained = explain_omegaconf_error(error)
    if explained:
        return explained
    parts = []
    while error is not None:
        # Hydra appends its search path to a missing-option message: noise for a user.
        text = str(error).split("\nConfig search path:")[0].strip()
        if text and text not in parts:
            parts.append(text)
        error = error.__cause__
    return "\n".join(parts)


def compose_config(overrides: Sequence[str], *, with_hydra: bool = False) -> DictConfig:
    """Compose `config.yaml` with overrides; Hydra's complaints become ConfigErrors (exit 2)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(
        version_base=VERSION_BASE, config_dir=config_dir(), job_name="fefm-lab"
    ):
        try:
            return compose(CONFIG_NAME, overrides=list(overrides), return_hydra_config=with_hydra)
        except (HydraException, OmegaConfBaseException, ValueError) as error:
            raise ConfigError(hydra_message(error)) from None


def resolve(cfg: DictConfig) -> dict[str, Any]:
    """The plain, fully interpolated config (without Hydra's own node, which is not resolved:
    its `${hydra:...}` values exist only inside a running job)."""
    try:
        if "hydra" in cfg:
            cfg = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        raise ConfigError(hydra_message(error)) from None
    return resolved


def resolved_config(overrides: Sequence[str]) -> dict[str, Any]:
    """Composed, validated and interpolated: what a command reads."""
    resolved = resolve(compose_config(overrides))
    validate_config(resolved)
    return resolved


def job_of(cfg: DictConfig) -> JobConfig:
    """A composed config resolved, validated and typed: what one job runs on."""
    return job_config(resolve(cfg))


def group_options(group: str) -> list[str]:
    """The options of a config group, from the conf/ files and the ConfigStore alike."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(
        version_base=VERSION_BASE, config_dir=config_dir(), job_name="fefm-lab"
    ):
        return sorted(GlobalHydra.instance().config_loader().get_group_options(group))
