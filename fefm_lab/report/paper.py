"""The paper's Table 5 (Pande 2020, test AUC / log loss) and the settings it was measured with.

The numbers are stated here once; the settings are the paper presets themselves
(conf/experiment/paper_criteo.yaml, paper_avazu.yaml), read from the packaged configs, so a run
gets the paper's numbers beside it exactly when it ran with what the preset sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

# (dataset, ablation) -> (AUC, log loss); the "none" rows are Table 4's best DeepFEFM.
TABLE5: dict[tuple[str, str], tuple[float, float]] = {
    ("criteo", "none"): (0.81405, 0.43778),
    ("criteo", "no_fefm_logit"): (0.81381, 0.43795),
    ("criteo", "no_linear"): (0.81386, 0.43793),
    ("criteo", "no_feature_embed_in_dnn"): (0.81363, 0.43832),
    ("criteo", "no_fefm_embed_in_dnn"): (0.81259, 0.43919),
    ("avazu", "none"): (0.77801, 0.38052),
    ("avazu", "no_fefm_logit"): (0.77689, 0.38113),
    ("avazu", "no_linear"): (0.77768, 0.38078),
    ("avazu", "no_feature_embed_in_dnn"): (0.77814, 0.3806),
    ("avazu", "no_fefm_embed_in_dnn"): (0.77656, 0.38121),
}
PAPER_DATASETS = ("criteo", "avazu")
# The sections of a paper preset that describe the model and its training.
_SETTING_SECTIONS = ("model", "trainer")


@cache
def paper_settings(dataset: str) -> dict[str, str]:
    """Flattened param name -> value as logged, for what `experiment=paper_<dataset>` sets."""
    from fefm_lab.config.compose import config_dir
    from fefm_lab.tracking.confighash import flatten
    from fefm_lab.tracking.run_logging import param_value

    preset = OmegaConf.load(Path(config_dir()) / "experiment" / f"paper_{dataset}.yaml")
    values = OmegaConf.to_container(preset)
    sections = {key: values[key] for key in _SETTING_SECTIONS if key in values}
    return {key: param_value(value) for key, value in flatten(sections).items()}


def paper_gap(dataset: str, ablation: str, metric: str = "auc") -> float | None:
    """Table 5's difference (ablation - no ablation) on `dataset`, or None if it has none."""
    if ablation == "none" or (dataset, ablation) not in TABLE5:
        return None
    column = 0 if metric == "auc" else 1
    return TABLE5[(dataset, ablation)][column] - TABLE5[(dataset, "none")][column]


def paper_numbers(
    dataset: str, model: str, ablation: str, params: Mapping[str, Any]
) -> tuple[float, float] | None:
    """Table 5's (AUC, log loss) when the run is DeepFEFM with the paper's settings, else None."""
    if model != "deepfefm" or dataset not in PAPER_DATASETS or (dataset, ablation) not in TABLE5:
        return None
    settings = paper_settings(dataset)
    if any(str(params.get(key)) != value for key, value in settings.items()):
        return None
    return TABLE5[(dataset, ablation)]
