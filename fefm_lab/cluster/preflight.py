"""What the launching process does for the cluster before a sweep's first job starts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fefm_lab.cluster.checks import check_launch, root_dir_override
from fefm_lab.cluster.launchers import LauncherPlacement, launcher_placement
from fefm_lab.cluster.shared_data import prepare_sweep_datasets


def placement_and_root(base_cfg: DictConfig) -> tuple[LauncherPlacement, list[str]]:
    """The launcher's placement (from the composed `hydra.launcher`) and the override that
    makes a relative `paths.root_dir` absolute when jobs run in another working directory."""
    placement = launcher_placement(OmegaConf.to_container(base_cfg.hydra.launcher, resolve=False))
    return placement, root_dir_override(str(base_cfg.paths.root_dir), placement)


def prepare_cluster_sweep(
    configs: Sequence[Mapping[str, Any]], placement: LauncherPlacement
) -> list[str]:
    """Refuse local-only settings for the launcher, then prepare each distinct dataset once;
    the overrides that hand the jobs the prepared fingerprints."""
    check_launch(configs[0], placement)
    return prepare_sweep_datasets(configs).overrides()
