"""The `dataset` config group as a checked dataclass: every mistake is a ConfigError naming its key.

`validate_dataset_config` runs before any data is read, so a typo fails in milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from fefm_lab.config.schema import SYNTHETIC_TEACHERS
from fefm_lab.errors import ConfigError

FORMATS = ("criteo", "avazu", "generic", "synthetic")
SPLIT_MODES = ("shuffled", "sequential", "given")
SPLIT_FILE_ROLES = ("train", "validation", "test")
INTEGER_ENCODINGS = ("categorical", "log_bucket", "dense_minmax")
BAD_ROW_POLICIES = ("error", "skip")
FILE_TYPES = ("csv", "parquet")
SYNTHETIC_FORMATS = ("criteo", "avazu")
SYNTHETIC_KEY = "dataset.synthetic"


@dataclass(frozen=True)
class SyntheticSource:
    """What `format: synthetic` generates (then prepares as `format` raw data)."""

    format: str = "criteo"
    rows: int = 150_000
    seed: int = 0
    teacher: str = "pairs"


@dataclass(frozen=True)
class DatasetConfig:
    """One dataset and how to prepare it (mirrors conf/dataset/*.yaml)."""

    name: str = "synthetic"
    format: str = "synthetic"
    path: str | None = None
    split: str = "shuffled"
    split_fractions: tuple[float, float, float] = (0.64, 0.16, 0.20)
    split_seed: int | None = None
    min_count: int = 20
    integer_encoding: str = "categorical"
    on_bad_rows: str = "error"
    # generic sources only
    file_type: str = "csv"
    separator: str = ","
    header: bool = True
    column_names: tuple[str, ...] | None = None
    label: str | None = None
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    # split "given" only: three files under `path` (a folder) and their published MD5s
    split_files: tuple[str, str, str] = ("train.csv", "valid.csv", "test.csv")
    md5: tuple[str, str, str] | None = None
    # synthetic only
    synthetic: SyntheticSource = field(default_factory=SyntheticSource)
    # performance knobs: they do not change the prepared content, so they are not fingerprinted
    block_bytes: int = 16 << 20
    shard_rows: int = 1_000_000

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
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, DictConfig | ListConfig):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return value


def _choice(
    values: Mapping[str, Any],
    key: str,
    choices: tuple[str, ...],
    default: str,
    prefix: str = "dataset",
) -> str:
    value = values.get(key, default)
    if value not in choices:
        raise ConfigError(f"{prefix}.{key} must be one of {', '.join(choices)}; received {value!r}")
    return value


def _int(
    values: Mapping[str, Any],
    key: str,
    default: int | None,
    minimum: int,
    prefix: str = "dataset",
) -> int | None:
    value = values.get(key, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{prefix}.{key} must be an integer >= {minimum}; received {value!r}")
    return value


def _names(values: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = values.get(key) or ()
    if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"dataset.{key} must be a list of column names; received {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"dataset.{key} lists a column twice: {list(value)!r}")
    return tuple(value)


def validate_dataset_config(dataset_cfg: Any) -> DatasetConfig:
    """Check a `dataset` config (DictConfig, dict or DatasetConfig) and return it typed.

    Raises ConfigError naming the key (`dataset.min_count`, ...) and what was expected.
    """
    if isinstance(dataset_cfg, DatasetConfig):
        dataset_cfg = asdict(dataset_cfg)
    values = _to_plain(dataset_cfg)
    if not isinstance(values, Mapping):
        raise ConfigError(f"dataset must be a mapping of settings; received {values!r}")
    known = set(DatasetConfig.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"dataset.{unknown[0]} is not a dataset setting (known: {', '.join(sorted(known))})"
        )
    fmt = _choice(values, "format", FORMATS, "synthetic")
    name = values.get("name") or fmt
    if not isinstance(name, str):
        raise ConfigError(f"dataset.name must be a string; received {name!r}")
    path = values.get("path")
    if fmt != "synthetic" and (not isinstance(path, str) or not path or path == "???"):
        if values.get("split") == "given":
            raise ConfigError(
                "dataset.path must name the folder holding the benchmark's split files "
                f"(e.g. dataset.path=/data/Criteo_x1); received {path!r}"
            )
        raise ConfigError(
            f"dataset.path must name the raw {fmt} file (e.g. dataset.path=/data/train.txt); "
            f"received {path!r}"
        )
    fractions = values.get("split_fractions", (0.64, 0.16, 0.20))
    if (
        isinstance(fractions, str)
        or not hasattr(fractions, "__len__")
        or len(fractions) != 3
        or not all(isinstance(f, int | float) and not isinstance(f, bool) for f in fractions)
        or any(f < 0 for f in fractions)
        or fractions[0] <= 0
        or not math.isclose(sum(fractions), 1.0, abs_tol=1e-9)
    ):
        raise ConfigError(
            "dataset.split_fractions must be three numbers [train, validation, test] >= 0 "
            f"with train > 0 summing to 1; received {fractions!r}"
        )
    synthetic_values = _to_plain(values.get("synthetic")) or {}
    if not isinstance(synthetic_values, Mapping):
        raise ConfigError(f"dataset.synthetic must be a mapping; received {synthetic_values!r}")
    unknown = sorted(set(synthetic_values) - set(SyntheticSource.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"dataset.synthetic.{unknown[0]} is not a synthetic-data setting")
    synthetic = SyntheticSource(
        format=_choice(synthetic_values, "format", SYNTHETIC_FORMATS, "criteo", SYNTHETIC_KEY),
        rows=_int(synthetic_values, "rows", 150_000, 1, SYNTHETIC_KEY),
        seed=_int(synthetic_values, "seed", 0, 0, SYNTHETIC_KEY),
        teacher=_choice(synthetic_values, "teacher", SYNTHETIC_TEACHERS, "pairs", SYNTHETIC_KEY),
    )
    separator = values.get("separator", ",")
    if not isinstance(separator, str) or len(separator) != 1 or separator in '\n\r"':
        raise ConfigError(
            f"dataset.separator must be one character (not a newline or quote); "
            f"received {separator!r}"
        )
    header = values.get("header", True)
    if not isinstance(header, bool):
        raise ConfigError(f"dataset.header must be true or false; received {header!r}")
    column_names = values.get("column_names")
    config = DatasetConfig(
        name=name,
        format=fmt,
        path=path,
        split=_choice(values, "split", SPLIT_MODES, "shuffled"),
        split_fractions=tuple(float(f) for f in fractions),
        split_seed=_int(values, "split_seed", None, 0),
        min_count=_int(values, "min_count", 20, 1),
        integer_encoding=_choice(values, "integer_encoding", INTEGER_ENCODINGS, "categorical"),
        on_bad_rows=_choice(values, "on_bad_rows", BAD_ROW_POLICIES, "error"),
        file_type=_choice(values, "file_type", FILE_TYPES, "csv"),
        separator=separator,
        header=header,
        column_names=_names(values, "column_names") if column_names is not None else None,
        label=values.get("label"),
        categorical=_names(values, "categorical"),
        numeric=_names(values, "numeric"),
        split_files=_split_files(values),
        md5=_md5s(values),
        synthetic=synthetic,
        block_bytes=_int(values, "block_bytes", 16 << 20, 1),
        shard_rows=_int(values, "shard_rows", 1_000_000, 1),
    )
    if fmt == "generic":
        _check_generic(config)
    if config.split == "given" and (fmt != "generic" or config.file_type != "csv"):
        raise ConfigError(
            "dataset.split=given reads three csv files as published (dataset presets bars_*); "
            f"it needs dataset.format=generic and dataset.file_type=csv, got {fmt} / "
            f"{config.file_type}"
        )
    return config


def _split_files(values: Mapping[str, Any]) -> tuple[str, str, str]:
    """The [train, validation, test] file names under dataset.path (split=given)."""
    files = _to_plain(values.get("split_files", DatasetConfig.split_files))
    if (
        isinstance(files, str)
        or not hasattr(files, "__len__")
        or len(files) != 3
        or not all(isinstance(f, str) and f and "/" not in f for f in files)
        or len(set(files)) != 3
    ):
        raise ConfigError(
            "dataset.split_files must be three distinct file names [train, validation, test] "
            f"inside dataset.path; received {files!r}"
        )
    return tuple(files)


def _md5s(values: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """The published MD5 of each split file, or None (not checked)."""
    digests = _to_plain(values.get("md5"))
    if digests is None:
        return None
    if (
        isinstance(digests, str)
        or not hasattr(digests, "__len__")
        or len(digests) != 3
        or not all(
            isinstance(d, str) and len(d) == 32 and all(c in "0123456789abcdef" for c in d)
            for d in digests
        )
    ):
        raise ConfigError(
            "dataset.md5 must be null or three lowercase hex MD5 digests (32 characters) of "
            f"[train, validation, test]; received {digests!r}"
        )
    return tuple(digests)


def _check_generic(config: DatasetConfig) -> None:
    if not isinstance(config.label, str) or not config.label or config.label == "???":
        raise ConfigError(f"dataset.label must name the label column; received {config.label!r}")
    if not config.categorical and not config.numeric:
        raise ConfigError("dataset.categorical and dataset.numeric are both empty: name columns")
    overlap = {config.label} & set(config.categorical) | set(config.categorical) & set(
        config.numeric
    )
    overlap |= {config.label} & set(config.numeric)
    if overlap:
        raise ConfigError(
            f"dataset.categorical / dataset.numeric / dataset.label overlap on {sorted(overlap)!r}"
        )
    if config.file_type == "csv" and not config.header and not config.column_names:
        raise ConfigError(
            "dataset.column_names must list every column when dataset.header is false"
        )
    if config.column_names:
        missing = [
            c
            for c in (config.label, *config.categorical, *config.numeric)
            if c not in config.column_names
        ]
        if missing:
            raise ConfigError(f"dataset.column_names lacks the declared column(s) {missing!r}")
