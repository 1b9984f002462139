"""The paper's Table 5 (Pande 2020, test AUC / log loss) and the settings it was measured with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# (dataset, ablation) -> (AUC, log loss)
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

# The Table 4 settings (the paper_criteo / paper_avazu presets) a run must have for the paper's
# numbers to be put beside it. Flattened param name -> value as logged.
PAPER_SETTINGS: dict[str, dict[str, str]] = {
    "criteo": {
        "model.embedding_dim": "48",
        "model.dnn_hidden_units": "[1024, 1024, 1024]",
        "model.dnn_dropout": "0.2",
        "trainer.optimizer": "adagrad",
        "trainer.learning_rate": "0.01",
    },
    "avazu": {
        "model.embedding_dim": "96",
        "model.dnn_hidden_units": "[1024, 1024, 1024]",
        "model.dnn_dropout": "0.2",
        "trainer.optimizer": "adagrad",
        "trainer.learning_rate": "0.01",
    },
}


def paper_numbers(
    dataset: str, model: str, ablation: str, params: Mapping[str, Any]
) -> tuple[float, float] | None:
    """Table 5's (AUC, log loss) when the run is DeepFEFM with the paper's settings, else None."""
    settings = PAPER_SETTINGS.get(dataset)
    if model != "deepfefm" or settings is None or (dataset, ablation) not in TABLE5:
        return None
    if any(str(params.get(key)) != value for key, value in settings.items()):
        return None
    return TABLE5[(dataset, ablation)]
