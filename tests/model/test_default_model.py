"""One default per model key: the model a plain `fefm-lab run` builds (the CLI's composed config),
the schema's dataclass and the Python API's builders agree on every default, embedding_dim
included. The one documented exception: `SparseFeat`'s own embedding_dim=4 is DeepCTR's default
for hand-built columns (`fefm_lab/features.py`); runs take k from the config."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from fefm_lab.config.compose import resolved_config
from fefm_lab.config.schema import MODEL_CONFIG_ONLY, MODEL_SCHEMAS, DeepFEFMConfig, model_defaults
from fefm_lab.features import SparseFeat


@pytest.mark.parametrize("name", sorted(MODEL_SCHEMAS))
def test_the_cli_default_model_is_the_schema_default(name):
    composed = resolved_config([f"model={name}"])["model"]
    assert composed == dataclasses.asdict(MODEL_SCHEMAS[name]())


def test_the_default_deepfefm_is_the_same_from_the_cli_the_schema_and_the_model_api():
    import fefm_lab
    from fefm_lab.model import MODELS

    composed = resolved_config([])["model"]
    schema = dataclasses.asdict(DeepFEFMConfig())
    assert composed["name"] == "deepfefm"
    assert composed["embedding_dim"] == schema["embedding_dim"] == 8
    signature = inspect.signature(fefm_lab.DeepFEFM)
    assert fefm_lab.DeepFEFM is MODELS["deepfefm"]
    api = {
        key: parameter.default
        for key, parameter in signature.parameters.items()
        if parameter.default is not inspect.Parameter.empty and key != "seed"
    }
    # the builder takes every schema key but the config-only ones, with the schema's default
    # (lists come as tuples in the signature)
    assert set(api) == set(schema) - set(MODEL_CONFIG_ONLY)
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in api.items()} == {
        key: composed[key] for key in api
    }
    assert model_defaults("deepfefm") == {key: composed[key] for key in api}


def test_sparse_feat_keeps_deepctrs_default_size():
    assert SparseFeat("C1", 10).embedding_dim == 4
