"""Every experiment preset's sweeper settings are ones its sweeper takes.

A preset that inherits another's `hydra.sweeper` keys for a different sweeper composes fine and
fails only when Hydra instantiates the sweeper (`make tune` once did, on `first_seeds`).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from fefm_lab.config.compose import compose_config, config_dir

EXPERIMENTS = sorted(path.stem for path in (Path(config_dir()) / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_sweeper_takes_the_preset_keys(experiment: str) -> None:
    cfg = compose_config([f"experiment={experiment}"], with_hydra=True)
    keys = OmegaConf.to_container(cfg.hydra.sweeper, resolve=False)
    sweeper = get_class(keys.pop("_target_"))
    # what Hydra does when it instantiates the sweeper: the keys become keyword arguments
    inspect.signature(sweeper).bind(**keys)


def test_tuned_and_adaptive_studies_share_their_settings() -> None:
    """The tuned study and the adaptive one differ in sweeper, launcher and experiment only."""

    def settings(experiment: str) -> dict:
        cfg = OmegaConf.to_container(compose_config([f"experiment={experiment}"]), resolve=True)
        cfg.pop("mlflow")
        return cfg

    assert settings("tuned_ablation") == settings("synthetic_ablation")
    tuned = compose_config(["experiment=tuned_ablation"], with_hydra=True).hydra
    assert tuned.runtime.choices["hydra/sweeper"] == "optuna"
    assert "first_seeds" not in tuned.sweeper
