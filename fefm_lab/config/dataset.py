"""The `dataset` section as a typed, frozen `DatasetConfig`, built from the dataset schemas.

Every key's default, type and range is declared once, in `fefm_lab.config.schema`
(`DATASET_SCHEMAS`); `DatasetConfig` takes its defaults from there and `validate_dataset_config`
checks each key with the schema's rule. This module adds only the rules between keys. Every
mistake is a ConfigError in the house style, `dataset.KEY: expected ..., got ...`, raised before
any data is read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from omegaconf import MISSING

from fefm_lab.config.rules import check_section, check_value, schema_fields
from fefm_lab.config.schema import (
    GenericDatasetSchema,
    SyntheticDatasetSchema,
    SyntheticSourceSchema,
)
from fefm_lab.errors import ConfigError

# Every key a dataset may have: the default dataset's (synthetic) and a generic file's.
_SCHEMAS = (SyntheticDatasetSchema, GenericDatasetSchema)
PREFIX = "dataset."


def _schema_of(key: str) -> type:
    return next(schema for schema in _SCHEMAS if key in schema_fields(schema))


def _default(key: str, schema: type | None = None) -> Any:
    """The schema's default of `key`, as DatasetConfig holds it: a required key (`???`) is
    None until given, a list is a tuple."""
    value = schema_fields(schema or _schema_of(key))[key].default
    if value is MISSING:
        return None
    return tuple(value) if isinstance(value, list) else value


def _source_default(key: str) -> Any:
    return _default(key, SyntheticSourceSchema)


@dataclass(frozen=True)
class SyntheticSource:
    """What `format: synthetic` generates (then prepares as `format` raw data); keys and
    defaults: `SyntheticSourceSchema`."""

    format: str = _source_default("format")
    rows: int = _source_default("rows")
    seed: int = _source_default("seed")
    teacher: str = _source_default("teacher")


@dataclass(frozen=True)
class DatasetConfig:
    """One dataset and how to prepare it. Keys, defaults and docs: the schemas in
    `fefm_lab.config.schema.DATASET_SCHEMAS`; `DatasetConfig()` is the default dataset
    (`dataset=synthetic`)."""

    name: str = _default("name")
    format: str = _default("format")
    path: str | None = _default("path")
    split: str = _default("split")
    split_fractions: tuple[float, float, float] = _default("split_fractions")
    split_seed: int | None = _default("split_seed")
    min_count: int = _default("min_count")
    integer_encoding: str = _default("integer_encoding")
    on_bad_rows: str = _default("on_bad_rows")
    # generic sources only
    file_type: str = _default("file_type")
    separator: str = _default("separator")
    header: bool = _default("header")
    column_names: tuple[str, ...] | None = _default("column_names")
    label: str | None = _default("label")
    categorical: tuple[str, ...] = _default("categorical")
    numeric: tuple[str, ...] = _default("numeric")
    # split "given" only: three files under `path` (a folder) and their published MD5s
    split_files: tuple[str, str, str] = _default("split_files")
    md5: tuple[str, str, str] | None = _default("md5")
    # synthetic only
    synthetic: SyntheticSource = field(default_factory=SyntheticSource)
    # performance knobs: they do not change the prepared content, so they are not fingerprinted
    block_bytes: int = _default("block_bytes")
    shard_rows: int = _default("shard_rows")

    def settings(self) -> dict[str, Any]:
        """The settings that determine the prepared content (fingerprinted and in the manifest)."""
        values = asdict(self)
        for key in ("name", "path", "block_bytes", "shard_rows", "synthetic"):
            values.pop(key)
        values["split_fractions"] = list(self.split_fractions)
        if self.format != "generic":
            for key in ("file_type", "separator", "header", "column_names", "label"):
                values.pop(key)
            values.pop("categorical")
            values.pop("numeric")
        else:
            values["column_names"] = list(self.column_names) if self.column_names else None
            values["categorical"] = list(self.categorical)
            values["numeric"] = list(self.numeric)
        # the MD5s are a check of the files, which the source fingerprint already covers
        values.pop("md5")
        if self.split == "given":
            # the files as given: no fraction or seed decides a row's split
            values.pop("split_fractions")
            values.pop("split_seed")
            values["split_files"] = list(self.split_files)
        else:
            values.pop("split_files")
        return values


def _to_plain(value: Any) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _error(key: str, expected: str, got: Any) -> ConfigError:
    return ConfigError(f"{PREFIX}{key}: expected {expected}, got {got!r}")


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


def validate_dataset_config(dataset_cfg: Any) -> DatasetConfig:
    """Check a `dataset` config (DictConfig, dict or DatasetConfig) and return it typed.

    Keys left out take the schema's default; `name` left out (or null) is the format's.
    """
    if isinstance(dataset_cfg, DatasetConfig):
        dataset_cfg = asdict(dataset_cfg)
    values = _to_plain(dataset_cfg)
    if not isinstance(values, Mapping):
        raise ConfigError(f"dataset: expected a mapping of settings, got {values!r}")
    known = [item.name for item in dataclasses.fields(DatasetConfig)]
    for key in values:
        if key not in known:
            raise ConfigError(f"{PREFIX}{key}: unknown key; allowed: {', '.join(known)}")
    given = {key: value for key, value in values.items() if not (key == "name" and value is None)}
    for key, value in given.items():
        if key == "synthetic":
            check_section(value or {}, SyntheticSourceSchema, f"{PREFIX}synthetic.")
        elif not (value is None and _default(key) is None):  # a required key not given yet
            check_value(_schema_of(key), key, value, PREFIX)
    typed = {key: _as_tuple(value) for key, value in given.items() if key != "synthetic"}
    if "split_fractions" in typed:
        typed["split_fractions"] = tuple(float(f) for f in typed["split_fractions"])
    typed.setdefault("name", typed.get("format", DatasetConfig.format))
    config = DatasetConfig(**typed, synthetic=SyntheticSource(**(given.get("synthetic") or {})))
    _check_between_keys(config)
    return config


def _check_between_keys(config: DatasetConfig) -> None:
    """The rules that involve several keys (each key's own range is the schema's)."""
    fmt = config.format
    path = config.path
    if fmt != "synthetic" and (not path or path == "???"):
        if config.split == "given":
            raise _error(
                "path",
                "the folder holding the benchmark's split files "
                "(e.g. dataset.path=/data/Criteo_x1)",
                path,
            )
        raise _error("path", f"the raw {fmt} file (e.g. dataset.path=/data/train.txt)", path)
    if fmt == "generic":
        _check_generic(config)
    if config.split == "given" and (fmt != "generic" or config.file_type != "csv"):
        raise _error(
            "split",
            "'given' only with dataset.format=generic and dataset.file_type=csv (three csv "
            f"files as published: the bars_* presets); format is {fmt!r}, file_type "
            f"{config.file_type!r}",
            config.split,
        )


def _check_generic(config: DatasetConfig) -> None:
    if not config.label or config.label == "???":
        raise _error("label", "the name of the 0/1 label column", config.label)
    if not config.categorical and not config.numeric:
        raise _error(
            "categorical",
            "at least one feature column here or in dataset.numeric",
            list(config.categorical),
        )
    columns = [config.label, *config.categorical, *config.numeric]
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise ConfigError(
            "dataset.label / dataset.categorical / dataset.numeric: expected each column in one "
            f"of them, got {twice!r} in two"
        )
    if config.file_type == "csv" and not config.header and not config.column_names:
        raise _error(
            "column_names",
            "every column name in file order (dataset.header is false)",
            config.column_names,
        )
    if config.column_names:
        missing = [c for c in columns if c not in config.column_names]
        if missing:
            raise _error(
                "column_names",
                f"the declared columns {missing!r} among them",
                list(config.column_names),
            )
