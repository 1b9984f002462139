"""The debug presets (and experiment=smoke) size every model by what that model has."""

from __future__ import annotations

import pytest

from fefm_lab.config.compose import resolved_config
from fefm_lab.config.rules import schema_fields
from fefm_lab.config.schema import MODEL_NAMES, MODEL_SCHEMAS

# preset -> (embedding_dim, dnn_hidden_units) it asks for
PRESETS = {
    "debug=fast": (8, [64, 32]),
    "debug=tiny": (4, [8]),
    "experiment=smoke": (8, [64, 32]),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_preset_sizes_each_model_by_its_own_keys(model: str, preset: str) -> None:
    resolved = resolved_config([f"model={model}", preset])
    embedding_dim, units = PRESETS[preset]
    fields = schema_fields(MODEL_SCHEMAS[model])
    assert set(resolved["model"]) <= set(fields)  # nothing the model lacks
    assert resolved["model"].get("embedding_dim") == (
        embedding_dim if "embedding_dim" in fields else None
    )
    assert resolved["model"].get("dnn_hidden_units") == (
        units if "dnn_hidden_units" in fields else None
    )
    assert "debug" not in resolved  # consumed by the model's YAML, not a setting of the run
    assert resolved["trainer"]["max_epochs"] == 2


def test_without_a_preset_and_with_explicit_values_the_model_keeps_its_own() -> None:
    plain = resolved_config(["model=deepfefm"])["model"]
    assert (plain["embedding_dim"], plain["dnn_hidden_units"]) == (8, [256, 128, 64])
    assert resolved_config(["model=fm"])["model"]["embedding_dim"] == 16
    explicit = resolved_config(["model=deepfm", "debug=tiny", "model.embedding_dim=5"])["model"]
    assert (explicit["embedding_dim"], explicit["dnn_hidden_units"]) == (5, [8])
    shallow = resolved_config(["debug=tiny", "ablation=shallow"])["model"]
    assert shallow["dnn_hidden_units"] == []  # the ablation wins over the preset's size
