"""Check a resolved config against the schemas: each mistake is a ConfigError naming its key.

Composition already enforces the schemas' types (OmegaConf); `explain_omegaconf_error` rewrites
its complaints in the same words as `validate_config`, which checks what OmegaConf cannot: ranges,
keys added with `+`, a model's parameters, and plain dicts that never went through Hydra.
Nothing here imports Hydra or TensorFlow.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from fefm_lab.config.dataset import DatasetConfig, validate_dataset_config
from fefm_lab.config.rules import check_section, expected, schema_fields
from fefm_lab.config.schema import (
    DATASET_SCHEMAS,
    MODEL_CONFIG_ONLY,
    MODEL_NAMES,
    MODEL_SCHEMAS,
    SECTION_SCHEMAS,
    DatasetSchema,
    FefmLabConfig,
    ModelConfig,
    model_parameters,
)
from fefm_lab.config.trainer import TrainerConfig
from fefm_lab.errors import ConfigError

# Top-level keys that are config groups with a schema of their own (checked separately).
_GROUP_KEYS = ("dataset", "model", "trainer", *SECTION_SCHEMAS)


def _not_a_parameter(name: str, key: str) -> str:
    allowed = ", ".join(model_parameters(name))
    extra = " (and embedding_dim)" if "embedding_dim" in schema_fields(MODEL_SCHEMAS[name]) else ""
    return f"model.{key}: not a parameter of model {name!r}; it takes {allowed}{extra}"


def validate_model(model: Any) -> None:
    if not isinstance(model, Mapping) or "name" not in model:
        raise ConfigError(f"model: expected a model config (pick model=NAME), got {model!r}")
    name = model["name"]
    if name not in MODEL_NAMES:
        raise ConfigError(f"model.name: expected one of {', '.join(MODEL_NAMES)}, got {name!r}")
    schema = MODEL_SCHEMAS[name]
    fields = schema_fields(schema)
    origin = [n for n, other in MODEL_SCHEMAS.items() if set(model) == set(schema_fields(other))]
    if set(model) != set(fields) and len(origin) == 1:  # `model.name=fm` on another model's keys
        raise ConfigError(
            f"model.name: {name!r} set on the config of model {origin[0]!r}; "
            f"pick a model with model={name}, not model.name"
        )
    for key in model:
        if key not in fields:
            if key in MODEL_CONFIG_ONLY:
                raise ConfigError(f"model.{key}: model {name!r} has no embeddings; remove it")
            raise ConfigError(_not_a_parameter(name, key))
    check_section(model, schema, "model.")


def validate_config(resolved: Mapping[str, Any]) -> DatasetConfig:
    """Raise ConfigError naming the key and what is allowed; reads no data. Returns the dataset
    section as its checks typed it."""
    top = {key: value for key, value in resolved.items() if key not in _GROUP_KEYS}
    check_section(top, FefmLabConfig, "")
    validate_model(resolved.get("model"))
    check_section(resolved.get("trainer") or {}, TrainerConfig, "trainer.")
    for key, schema in SECTION_SCHEMAS.items():
        if key in resolved:
            check_section(resolved[key] or {}, schema, f"{key}.")

    return validate_dataset_config(resolved["dataset"])


def trainer_config(resolved: Mapping[str, Any]) -> TrainerConfig:
    """`TrainerConfig` of the run; its ValueErrors become ConfigErrors."""
    try:
        return TrainerConfig.from_mapping(dict(resolved["trainer"]))
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from None


# ---------------------------------------------------------------- OmegaConf's complaints

_NOT_IN_STRUCT = re.compile(
    r"Key '(?P<key>[^']+)' not in '(?P<schema>\w+)'\s+full_key: (?P<path>\S+)"
)
_SCHEMAS_BY_NAME = {
    schema.__name__: schema
    for schema in (
        *MODEL_SCHEMAS.values(),
        *DATASET_SCHEMAS.values(),
        *SECTION_SCHEMAS.values(),
        TrainerConfig,
    )
}


def _schema_for(path: str, owner: Any) -> type | None:
    """The schema dataclass holding `path`'s last key (`owner`: OmegaConf's object_type)."""
    if dataclasses.is_dataclass(owner):
        return owner
    section, _, rest = path.partition(".")
    if section == "model":
        return next((s for s in MODEL_SCHEMAS.values() if rest in schema_fields(s)), ModelConfig)
    if section == "dataset":
        schemas = DATASET_SCHEMAS.values()
        return next((s for s in schemas if rest in schema_fields(s)), DatasetSchema)
    if section == "trainer":
        return TrainerConfig
    return SECTION_SCHEMAS.get(section, FefmLabConfig if not rest else None)


def _unknown_key(path: str, schema: type) -> str:
    if schema in MODEL_SCHEMAS.values():
        name = schema_fields(schema)["name"].default
        return _not_a_parameter(name, path.rpartition(".")[2])
    return f"{path}: unknown key; allowed: {', '.join(schema_fields(schema))}"


def explain_omegaconf_error(error: BaseException | None) -> str | None:
    """`key: expected ..., got ...` for a type or key error met while composing, else None."""
    while error is not None:
        full_key = getattr(error, "full_key", None)
        if full_key:
            path = re.sub(r"\[\d+\]$", "", str(full_key))
            schema = _schema_for(path, getattr(error, "object_type", None))
            key = path.rpartition(".")[2]
            if schema is not None and key not in schema_fields(schema):
                return _unknown_key(path, schema)
            if schema is not None and ("not a valid" in str(error) or "converted" in str(error)):
                item = schema_fields(schema)[key]
                return f"{path}: expected {expected(item.type, item.rule)}, got {error.value!r}"
        match = _NOT_IN_STRUCT.search(str(error))
        if match and match["schema"] in _SCHEMAS_BY_NAME:
            return _unknown_key(match["path"], _SCHEMAS_BY_NAME[match["schema"]])
        error = error.__cause__
    return None
