"""Hydra's ConfigStore entries: the schemas (group `schema/`), the `ablation` options and the
`debug` presets' model sizes per model (group `debug_sizes/`, see `fefm_lab.config.debug`).

The schemas live in a group of their own so that `glob(*)` over a user-facing group never picks
one up; the YAML files pull theirs in with `/schema/<section>@_here_` in their defaults list.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from fefm_lab.config.ablation import ABLATIONS
from fefm_lab.config.debug import DEBUG_SIZES, DEBUG_SIZES_GROUP, debug_sizes
from fefm_lab.config.schema import (
    DATASET_SCHEMAS,
    MODEL_SCHEMAS,
    FefmLabConfig,
    MlflowConfig,
    PathsConfig,
    ServerConfig,
)
from fefm_lab.config.trainer import TrainerConfig

SCHEMA_GROUP = "schema"


def register_configs() -> None:
    """Store every schema, ablation option and debug size set (idempotent: a second call
    overwrites the same)."""
    store = ConfigStore.instance()
    store.store(group=SCHEMA_GROUP, name="config", node=FefmLabConfig)
    store.store(group=SCHEMA_GROUP, name="trainer", node=TrainerConfig)
    store.store(group=SCHEMA_GROUP, name="paths", node=PathsConfig)
    store.store(group=SCHEMA_GROUP, name="mlflow", node=MlflowConfig)
    store.store(group=SCHEMA_GROUP, name="server", node=ServerConfig)
    for name, schema in MODEL_SCHEMAS.items():
        store.store(group=f"{SCHEMA_GROUP}/model", name=name, node=schema)
    for name, schema in DATASET_SCHEMAS.items():
        store.store(group=f"{SCHEMA_GROUP}/dataset", name=name, node=schema)
    for ablation in ABLATIONS:
        node = {"ablation": ablation.name}
        if ablation.settings:
            node["model"] = {key: value for key, value in ablation.settings.items()}
        store.store(group="ablation", name=ablation.name, node=node, package="_global_")
    for preset in DEBUG_SIZES:
        for name in MODEL_SCHEMAS:
            sizes = debug_sizes(preset, name)
            if sizes:  # lr has none: conf/config.yaml's entry is optional
                store.store(group=DEBUG_SIZES_GROUP, name=f"{preset}_{name}", node=sizes)
