"""The debug presets (and experiment=smoke) size every model by the keys that model has, in
composition (`fefm_lab.config.debug`), with nothing restated in the model YAMLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from fefm_lab.config.compose import config_dir, resolved_config
from fefm_lab.config.debug import DEBUG_SIZES, debug_sizes
from fefm_lab.config.rules import schema_fields
from fefm_lab.config.schema import MODEL_NAMES, MODEL_SCHEMAS

# preset -> (embedding_dim, dnn_hidden_units) it asks for
PRESETS = {
    "debug=fast": (8, [64, 32]),
    "debug=tiny": (4, [8]),
    "experiment=smoke": (8, [64, 32]),
}
CONF = Path(config_dir())


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_preset_sizes_each_model_by_its_own_keys(model: str, preset: str) -> None:
    resolved = resolved_config([f"model={model}", preset])
    embedding_dim, units = PRESETS[preset]
    fields = schema_fields(MODEL_SCHEMAS[model])
    assert set(resolved["model"]) == set(fields)  # nothing the model lacks, nothing missing
    assert resolved["model"].get("embedding_dim") == (
        embedding_dim if "embedding_dim" in fields else None
    )
    assert resolved["model"].get("dnn_hidden_units") == (
        units if "dnn_hidden_units" in fields else None
    )
    # every other key keeps the model's own default
    plain = resolved_config([f"model={model}"])["model"]
    sized = {"embedding_dim", "dnn_hidden_units"}
    assert {k: v for k, v in resolved["model"].items() if k not in sized} == {
        k: v for k, v in plain.items() if k not in sized
    }
    assert "debug" not in resolved
    assert resolved["trainer"]["max_epochs"] == 2


def test_without_a_preset_and_with_explicit_values_the_model_keeps_its_own() -> None:
    plain = resolved_config(["model=deepfefm"])["model"]
    assert (plain["embedding_dim"], plain["dnn_hidden_units"]) == (8, [256, 128, 64])
    assert resolved_config(["model=fm"])["model"]["embedding_dim"] == 16
    explicit = resolved_config(["model=deepfm", "debug=tiny", "model.embedding_dim=5"])["model"]
    assert (explicit["embedding_dim"], explicit["dnn_hidden_units"]) == (5, [8])
    shallow = resolved_config(["debug=tiny", "ablation=shallow"])["model"]
    assert shallow["dnn_hidden_units"] == []  # the ablation wins over the preset's size
    # an experiment's own settings win over a debug preset's (it comes later in the defaults)
    study = resolved_config(["experiment=synthetic_ablation", "debug=tiny"])
    model, trainer = study["model"], study["trainer"]
    assert (model["embedding_dim"], model["dnn_hidden_units"], trainer["max_epochs"]) == (
        4,
        [64, 64],
        40,
    )
    assert trainer["steps_per_epoch"] == 16  # what the experiment leaves to the preset


def test_every_preset_has_its_sizes_and_no_model_yaml_restates_them() -> None:
    assert sorted(DEBUG_SIZES) == sorted(p.stem for p in (CONF / "debug").glob("*.yaml"))
    every_model_key = set().union(*(schema_fields(s) for s in MODEL_SCHEMAS.values()))
    for sizes in DEBUG_SIZES.values():
        assert set(sizes) <= every_model_key
    assert debug_sizes("tiny", "lr") == {} and debug_sizes("tiny", "fm") == {"embedding_dim": 4}
    for path in (CONF / "model").glob("*.yaml"):
        text = path.read_text()
        assert "oc.select" not in text and "debug" not in text, path.name
