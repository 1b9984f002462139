"""The `debug` presets' model sizes, set in composition on exactly the keys the chosen model has.

A preset (conf/debug/<name>.yaml) shortens training and shrinks the model. Its trainer settings
are in its YAML; its model sizes are declared here, once, because which of them apply depends on
the model (`lr` has no embeddings, `fm` no DNN). `fefm_lab.config.registry` stores, for every
preset and model, the sizes that model's schema has as the option `debug_sizes/<preset>_<model>`,
which conf/config.yaml merges into `model` right after the model's own YAML:

    - optional debug_sizes@model: ${debug}_${model}

so an experiment, a bars preset, an ablation and the command line still override them.
"""

from __future__ import annotations

from typing import Any

from fefm_lab.config.rules import schema_fields
from fefm_lab.config.schema import MODEL_SCHEMAS

DEBUG_SIZES_GROUP = "debug_sizes"

# preset -> model sizes (each key a field of some model's schema)
DEBUG_SIZES: dict[str, dict[str, Any]] = {
    # a small model for trying a change
    "fast": {"embedding_dim": 8, "dnn_hidden_units": [64, 32]},
    # the smallest that still exercises every part (the tests)
    "tiny": {"embedding_dim": 4, "dnn_hidden_units": [8]},
}


def debug_sizes(preset: str, model: str) -> dict[str, Any]:
    """The sizes of debug preset `preset` that model `model`'s schema has (lr: none)."""
    fields = schema_fields(MODEL_SCHEMAS[model])
    return {key: value for key, value in DEBUG_SIZES[preset].items() if key in fields}
