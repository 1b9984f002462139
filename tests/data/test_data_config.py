"""validate_dataset_config: every mistake names its key before any data is read."""

from __future__ import annotations

import pytest

from fefm_lab.config.dataset import DatasetConfig, validate_dataset_config
from fefm_lab.errors import ConfigError

CRITEO = {"format": "criteo", "path": "/data/train.txt"}


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"min_count": 0}, "dataset.min_count must be an integer >= 1; received 0"),
        ({"min_count": "20"}, "dataset.min_count"),
        ({"format": "kaggle"}, "dataset.format must be one of criteo, avazu, generic, synthetic"),
        ({"split": "random"}, "dataset.split must be one of shuffled, sequential"),
        ({"split_fractions": [0.5, 0.5]}, "dataset.split_fractions"),
        ({"split_fractions": [0.7, 0.2, 0.2]}, "summing to 1"),
        ({"split_fractions": [0.0, 0.5, 0.5]}, "train > 0"),
        ({"integer_encoding": "log"}, "dataset.integer_encoding must be one of categorical"),
        ({"on_bad_rows": "ignore"}, "dataset.on_bad_rows must be one of error, skip"),
        ({"split_seed": -1}, "dataset.split_seed"),
        ({"path": "???"}, "dataset.path must name the raw criteo file"),
        ({"path": None}, "dataset.path"),
        ({"min_cnt": 3}, "dataset.min_cnt is not a dataset setting"),
        ({"shard_rows": 0}, "dataset.shard_rows"),
    ],
)
def test_bad_values_name_the_key(overrides, fragment):
    with pytest.raises(ConfigError) as caught:
        validate_dataset_config({**CRITEO, **overrides})
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({}, "dataset.label must name the label column"),
        ({"label": "y"}, "dataset.categorical and dataset.numeric are both empty"),
        ({"label": "y", "categorical": ["y"]}, "overlap on ['y']"),
        ({"label": "y", "categorical": ["a"], "header": False}, "dataset.column_names"),
        ({"label": "y", "categorical": ["a", "a"]}, "dataset.categorical lists a column twice"),
        ({"label": "y", "categorical": ["a"], "separator": "||"}, "dataset.separator"),
        ({"label": "y", "categorical": ["a"], "file_type": "xlsx"}, "dataset.file_type"),
        ({"label": "y", "categorical": ["a"], "column_names": ["y"]}, "lacks the declared"),
    ],
)
def test_generic_needs_a_schema(overrides, fragment):
    with pytest.raises(ConfigError) as caught:
        validate_dataset_config({"format": "generic", "path": "/x.csv", **overrides})
    assert fragment in str(caught.value)


def test_synthetic_settings():
    with pytest.raises(ConfigError, match=r"dataset\.synthetic\.rows must be an integer >= 1"):
        validate_dataset_config({"format": "synthetic", "synthetic": {"rows": 0}})
    with pytest.raises(ConfigError, match=r"dataset\.synthetic\.size is not"):
        validate_dataset_config({"format": "synthetic", "synthetic": {"size": 3}})
    config = validate_dataset_config({"synthetic": {"rows": 1000, "format": "avazu"}})
    assert (config.format, config.synthetic.rows, config.synthetic.format) == (
        "synthetic",
        1000,
        "avazu",
    )


def test_round_trip_and_fingerprinted_settings():
    config = validate_dataset_config({**CRITEO, "min_count": 5, "block_bytes": 1024})
    assert isinstance(config, DatasetConfig)
    assert validate_dataset_config(config) == config
    settings = config.settings()
    assert settings["min_count"] == 5
    assert "block_bytes" not in settings and "path" not in settings
    assert "label" not in settings  # generic-only keys are not part of a criteo fingerprint


def test_composed_hydra_configs_validate():
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from fefm_lab.config.registry import register_configs

    register_configs()  # the `ablation` group that config.yaml's defaults name

    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        synthetic = validate_dataset_config(compose("config").dataset)
        assert synthetic.format == "synthetic" and synthetic.min_count == 20
        criteo = compose("config", overrides=["dataset=criteo", "dataset.path=/d/train.txt"])
        assert validate_dataset_config(criteo.dataset).path == "/d/train.txt"
        with pytest.raises(ConfigError, match=r"dataset\.path"):
            validate_dataset_config(compose("config", overrides=["dataset=avazu"]).dataset)
