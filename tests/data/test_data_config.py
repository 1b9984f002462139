"""validate_dataset_config: every mistake names its key before any data is read."""

from __future__ import annotations

import pytest

from fefm_lab.config.dataset import DatasetConfig, validate_dataset_config
from fefm_lab.errors import ConfigError

CRITEO = {"format": "criteo", "path": "/data/train.txt"}


ALLOWED = (
    "name, format, path, split, split_fractions, split_seed, min_count, integer_encoding, "
    "on_bad_rows, file_type, separator, header, column_names, label, categorical, numeric, "
    "split_files, md5, synthetic, block_bytes, shard_rows"
)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_count": 0}, "dataset.min_count: expected an integer >= 1, got 0"),
        ({"min_count": "20"}, "dataset.min_count: expected an integer >= 1, got '20'"),
        (
            {"format": "kaggle"},
            "dataset.format: expected one of criteo, avazu, generic, synthetic, got 'kaggle'",
        ),
        (
            {"split": "random"},
            "dataset.split: expected one of shuffled, sequential, given, got 'random'",
        ),
        (
            {"split_fractions": [0.5, 0.5]},
            "dataset.split_fractions: expected three numbers [train, validation, test] >= 0 "
            "with train > 0 summing to 1, got [0.5, 0.5]",
        ),
        (
            {"split_fractions": [0.7, 0.2, 0.2]},
            "dataset.split_fractions: expected three numbers [train, validation, test] >= 0 "
            "with train > 0 summing to 1, got [0.7, 0.2, 0.2]",
        ),
        (
            {"split_fractions": [0.0, 0.5, 0.5]},
            "dataset.split_fractions: expected three numbers [train, validation, test] >= 0 "
            "with train > 0 summing to 1, got [0.0, 0.5, 0.5]",
        ),
        (
            {"integer_encoding": "log"},
            "dataset.integer_encoding: expected one of categorical, log_bucket, dense_minmax, "
            "got 'log'",
        ),
        (
            {"on_bad_rows": "ignore"},
            "dataset.on_bad_rows: expected 'error' or 'skip', got 'ignore'",
        ),
        ({"split_seed": -1}, "dataset.split_seed: expected null or an integer >= 0, got -1"),
        (
            {"path": "???"},
            "dataset.path: expected the raw criteo file (e.g. dataset.path=/data/train.txt), "
            "got '???'",
        ),
        (
            {"path": None},
            "dataset.path: expected the raw criteo file (e.g. dataset.path=/data/train.txt), "
            "got None",
        ),
        ({"name": ""}, "dataset.name: expected a non-empty string, got ''"),
        (
            {"format": None},
            "dataset.format: expected one of criteo, avazu, generic, synthetic, got None",
        ),
        ({"min_cnt": 3}, f"dataset.min_cnt: unknown key; allowed: {ALLOWED}"),
        ({"shard_rows": 0}, "dataset.shard_rows: expected an integer >= 1, got 0"),
        ({"block_bytes": 1.5}, "dataset.block_bytes: expected an integer >= 1, got 1.5"),
        (
            {"split": "given"},
            "dataset.split: expected 'given' only with dataset.format=generic and "
            "dataset.file_type=csv (three csv files as published: the bars_* presets); format is "
            "'criteo', file_type 'csv', got 'given'",
        ),
    ],
)
def test_bad_values_name_the_key_and_what_it_takes(overrides, message):
    with pytest.raises(ConfigError) as caught:
        validate_dataset_config({**CRITEO, **overrides})
    assert str(caught.value) == message


GENERIC = {"format": "generic", "path": "/x.csv"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "dataset.label: expected the name of the 0/1 label column, got None"),
        (
            {"label": "y"},
            "dataset.categorical: expected at least one feature column here or in "
            "dataset.numeric, got []",
        ),
        (
            {"label": "y", "categorical": ["y"]},
            "dataset.label / dataset.categorical / dataset.numeric: expected each column in one "
            "of them, got ['y'] in two",
        ),
        (
            {"label": "y", "categorical": ["a"], "numeric": ["a"]},
            "dataset.label / dataset.categorical / dataset.numeric: expected each column in one "
            "of them, got ['a'] in two",
        ),
        (
            {"label": "y", "categorical": ["a"], "header": False},
            "dataset.column_names: expected every column name in file order (dataset.header is "
            "false), got None",
        ),
        (
            {"label": "y", "categorical": ["a", "a"]},
            "dataset.categorical: expected a list of distinct, non-empty column names, "
            "got ['a', 'a']",
        ),
        (
            {"label": "y", "categorical": ["a"], "separator": "||"},
            "dataset.separator: expected one character (not a newline or a quote), got '||'",
        ),
        (
            {"label": "y", "categorical": ["a"], "header": "yes"},
            "dataset.header: expected true or false, got 'yes'",
        ),
        (
            {"label": "y", "categorical": ["a"], "file_type": "xlsx"},
            "dataset.file_type: expected 'csv' or 'parquet', got 'xlsx'",
        ),
        (
            {"label": "y", "categorical": ["a"], "column_names": ["y"]},
            "dataset.column_names: expected the declared columns ['a'] among them, got ['y']",
        ),
        (
            {"label": "y", "categorical": ["a"], "split": "given", "path": None},
            "dataset.path: expected the folder holding the benchmark's split files "
            "(e.g. dataset.path=/data/Criteo_x1), got None",
        ),
        (
            {"label": "y", "categorical": ["a"], "split_files": ["a.csv", "a.csv", "b.csv"]},
            "dataset.split_files: expected three distinct file names [train, validation, test] "
            "inside dataset.path, got ['a.csv', 'a.csv', 'b.csv']",
        ),
        (
            {"label": "y", "categorical": ["a"], "md5": ["abc", "def", "0"]},
            "dataset.md5: expected null or three lowercase hex MD5 digests (32 characters) of "
            "[train, validation, test], got ['abc', 'def', '0']",
        ),
    ],
)
def test_generic_needs_its_columns(overrides, message):
    with pytest.raises(ConfigError) as caught:
        validate_dataset_config({**GENERIC, **overrides})
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("synthetic", "message"),
    [
        ({"rows": 0}, "dataset.synthetic.rows: expected an integer >= 1, got 0"),
        ({"seed": -1}, "dataset.synthetic.seed: expected an integer >= 0, got -1"),
        (
            {"format": "generic"},
            "dataset.synthetic.format: expected 'criteo' or 'avazu', got 'generic'",
        ),
        ({"teacher": "wide"}, "dataset.synthetic.teacher: expected 'pairs' or 'deep', got 'wide'"),
        ({"size": 3}, "dataset.synthetic.size: unknown key; allowed: format, rows, seed, teacher"),
    ],
)
def test_synthetic_settings_name_the_key(synthetic, message):
    with pytest.raises(ConfigError) as caught:
        validate_dataset_config({"format": "synthetic", "synthetic": synthetic})
    assert str(caught.value) == message


def test_synthetic_settings():
    config = validate_dataset_config({"synthetic": {"rows": 1000, "format": "avazu"}})
    assert (config.name, config.format, config.synthetic.rows, config.synthetic.format) == (
        "synthetic",
        "synthetic",
        1000,
        "avazu",
    )
    assert validate_dataset_config({}) == DatasetConfig()
    assert validate_dataset_config({**CRITEO, "name": None}).name == "criteo"


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
