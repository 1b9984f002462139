"""Config groups: every option composes and validates; mistakes name the key and exit 2."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml
from omegaconf import MISSING, OmegaConf

from fefm_lab import cli
from fefm_lab.config.ablation import ABLATION_NAMES, ABLATIONS, ablation_label
from fefm_lab.config.compose import compose_config, config_dir, group_options, resolve
from fefm_lab.config.rules import schema_fields
from fefm_lab.config.schema import (
    DATASET_SCHEMAS,
    MODEL_SCHEMAS,
    SECTION_SCHEMAS,
    FefmLabConfig,
    MarginConfig,
    SyntheticDatasetSchema,
    SyntheticSourceSchema,
    model_defaults,
    model_parameters,
)
from fefm_lab.config.trainer import EarlyStopping, TrainerConfig
from fefm_lab.config.validation import validate_config
from fefm_lab.errors import ConfigError
from fefm_lab.sweep.plan import expand_jobs

CONF = Path(config_dir())
GROUPS = (
    "ablation", "dataset", "debug", "experiment", "mlflow", "model", "paths", "search", "server",
    "trainer",
)  # fmt: skip
# What a group option needs besides itself to validate (required keys without a default).
NEEDS = {
    "criteo": ["dataset.path={tmp}/criteo.txt"],
    "avazu": ["dataset.path={tmp}/avazu.csv"],
    "generic": ["dataset.path={tmp}/clicks.csv", "dataset.label=click", "dataset.categorical=[ad]"],
    "paper_criteo": ["dataset.path={tmp}/criteo.txt"],
    "paper_avazu": ["dataset.path={tmp}/avazu.csv"],
    "criteo_x1": ["dataset.path={tmp}/Criteo_x1"],
    "avazu_x1": ["dataset.path={tmp}/Avazu_x1"],
    "frappe_x1": ["dataset.path={tmp}/Frappe_x1"],
    "criteo_x4": ["dataset.path={tmp}/Criteo_x4"],
    "bars_criteo_x1": ["dataset.path={tmp}/Criteo_x1"],
    "bars_criteo_x4": ["dataset.path={tmp}/Criteo_x4"],
    "bars_avazu_x1": ["dataset.path={tmp}/Avazu_x1"],
    "bars_frappe_x1": ["dataset.path={tmp}/Frappe_x1"],
}
SCHEMAS = (
    FefmLabConfig,
    *{schema: None for schema in DATASET_SCHEMAS.values()},
    SyntheticSourceSchema,
    TrainerConfig,
    EarlyStopping,
    *SECTION_SCHEMAS.values(),
    MarginConfig,
    *MODEL_SCHEMAS.values(),
)


def _options(group: str) -> list[str]:
    return group_options(group)


def _compose(overrides: list[str], tmp: Path) -> dict:
    return resolve(compose_config([*overrides, f"paths.root_dir={tmp}"]))


def test_groups_and_their_options() -> None:
    # conf/hydra/ holds fefm-lab's own version of a Hydra option (hydra/launcher=ray)
    folders = (p.name for p in CONF.iterdir() if p.is_dir())
    # conf/bars/ holds the bars_* experiments' per-model settings, picked by conf/config.yaml;
    # conf/study/ the settings experiments share (included from their defaults lists)
    assert sorted(f for f in folders if f not in ("__pycache__", "hydra")) == sorted(
        [
            "bars",
            "study",
            *(g for g in GROUPS if g != "ablation"),  # the ablations are options in the ConfigStore
        ]
    )
    assert _options("ablation") == sorted(ABLATION_NAMES)
    assert _options("model") == sorted(MODEL_SCHEMAS)
    assert "schema" not in _options("model") and _options("trainer") == ["adam", "default"]
    launchers = {"basic", "joblib", "ray", "submitit_local", "submitit_slurm"}  # cluster extra
    assert launchers <= set(_options("hydra/launcher"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_option_composes_and_validates(group: str, option: str, tmp_path: Path) -> None:
    needs = [n.format(tmp=tmp_path) for n in NEEDS.get(option, [])]
    resolved = _compose([f"{group}={option}", *needs], tmp_path)
    validate_config(resolved)
    assert resolved["mlflow"]["tracking_uri"] == f"sqlite:///{tmp_path}/mlflow.db"
    if group == "ablation":
        assert resolved["ablation"] == option and ablation_label(resolved) == option
    if group == "model":
        assert resolved["model"]["name"] == option
        assert set(resolved["model"]) == set(schema_fields(MODEL_SCHEMAS[option]))
    if group == "dataset" and option.endswith(("_x1", "_x4")):  # the benchmark's published splits
        assert (resolved["dataset"]["name"], resolved["dataset"]["format"]) == (option, "generic")
        assert resolved["dataset"]["split"] == "given" and len(resolved["dataset"]["md5"]) == 3
    elif group == "dataset":
        assert resolved["dataset"]["name"] == resolved["dataset"]["format"] == option
    if group == "experiment" and option.startswith("paper_"):
        assert resolved["dataset"]["name"] == option.removeprefix("paper_")
        assert resolved["mlflow"]["experiment"] == option


@pytest.mark.parametrize("option", _options("bars"))
def test_each_bars_setting_reaches_its_model(option: str, tmp_path: Path) -> None:
    """conf/bars/<experiment>_<model>.yaml is what `experiment=<experiment> model=<model>` runs."""
    experiment, _, model = option.rpartition("_")
    resolved = _compose(
        [f"experiment={experiment}", f"model={model}", f"dataset.path={tmp_path}"], tmp_path
    )
    validate_config(resolved)
    stated = OmegaConf.to_container(OmegaConf.load(CONF / "bars" / f"{option}.yaml"))
    assert {key: resolved["model"][key] for key in stated} == stated
    # the benchmark's batch and embedding size per dataset (Criteo_x4's _001 protocol: 10000, 16)
    batch, k = (10000, 16) if experiment == "bars_criteo_x4" else (4096, 10)
    trainer = resolved["trainer"]
    assert (trainer["optimizer"], trainer["learning_rate"], trainer["batch_size"]) == (
        "adam",
        0.001,
        batch,
    )
    assert trainer["early_stopping"]["monitor"] == "val_auc"
    assert trainer["early_stopping"]["patience"] == 2
    assert resolved["dataset"]["name"] == experiment.removeprefix("bars_")
    if model != "lr":
        assert resolved["model"]["embedding_dim"] == k


def test_defaults_come_from_the_schemas(tmp_path: Path) -> None:
    resolved = _compose([], tmp_path)
    assert resolved["trainer"] == dataclasses.asdict(TrainerConfig())
    assert resolved["trainer"]["learning_rate"] == 0.1  # what trainer=default runs have used
    deepfefm = {k: v for k, v in resolved["model"].items() if k not in ("name", "embedding_dim")}
    assert deepfefm == model_defaults("deepfefm")
    assert model_defaults("deepfefm")["l2_reg_embedding_field"] == 1e-7
    assert resolved["model"]["embedding_dim"] == 8  # deepfefm.yaml's one difference
    assert (resolved["seed"], resolved["force"], resolved["threads"]) == (1, False, None)
    lr = _compose(["model=lr"], tmp_path)["model"]
    assert lr == {"name": "lr", "task": "binary", "l2_mode": "batch", "l2_reg_linear": 1e-5}
    adam = _compose(["trainer=adam"], tmp_path)["trainer"]
    assert (adam["optimizer"], adam["learning_rate"], adam["batch_size"]) == ("adam", 0.001, 1024)


def test_dataset_defaults_are_the_schemas_everywhere(tmp_path: Path) -> None:
    """One default per dataset key: the schemas, the Python API's DatasetConfig, a plain dict
    with nothing set, and the composed default dataset agree (a key DatasetConfig has and no
    format's schema has would be unreachable from the command line)."""
    from fefm_lab.config.dataset import DatasetConfig, SyntheticSource, validate_dataset_config

    def plain(value):
        return list(value) if isinstance(value, tuple) else value

    python_defaults = {k: plain(v) for k, v in dataclasses.asdict(DatasetConfig()).items()}
    schema_keys = set()
    for schema in DATASET_SCHEMAS.values():
        for name, item in schema_fields(schema).items():
            schema_keys.add(name)
            if item.default is MISSING or name == "synthetic":
                continue  # required (criteo, avazu, generic), or a section (checked below)
            if schema is SyntheticDatasetSchema or name not in schema_fields(
                SyntheticDatasetSchema
            ):
                assert python_defaults[name] == item.default, (schema.__name__, name)
    assert schema_keys == set(python_defaults)
    assert python_defaults["label"] is None  # required for generic files, absent elsewhere
    synthetic = dataclasses.asdict(SyntheticSource())
    assert synthetic == {k: i.default for k, i in schema_fields(SyntheticSourceSchema).items()}
    assert python_defaults["synthetic"] == synthetic

    # The same defaults from a plain dict and from the command line's default dataset.
    assert validate_dataset_config({}) == DatasetConfig()
    composed = _compose([], tmp_path)["dataset"]
    assert validate_dataset_config(composed) == DatasetConfig()
    assert composed == {
        k: v for k, v in python_defaults.items() if k in schema_fields(SyntheticDatasetSchema)
    }


def test_model_schemas_match_the_builders() -> None:
    """Each schema lists exactly its builder's keywords, and the builder's defaults are its."""
    import inspect

    from fefm_lab.model import MODELS
    from fefm_lab.model import model_parameters as builder_parameters

    for name in MODEL_SCHEMAS:
        builder = [k for k in builder_parameters(name) if k != "seed"]
        assert sorted(model_parameters(name)) == sorted(builder), name
        signature = inspect.signature(MODELS[name]).parameters
        defaults = {key: signature[key].default for key in builder}
        expected = {
            k: tuple(v) if isinstance(v, list) else v for k, v in model_defaults(name).items()
        }
        assert defaults == expected, name
    assert (
        inspect.signature(MODELS["deepfefm"]).parameters["l2_reg_embedding_field"].default == 1e-7
    )


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_every_schema_field_is_documented(schema: type) -> None:
    undocumented = [name for name, item in schema_fields(schema).items() if len(item.doc) < 8]
    assert undocumented == []


def _documented(lines: list[str], number: int) -> bool:
    """A comment on the line, or above it in its paragraph within its block, or above its block."""
    indent = len(lines[number]) - len(lines[number].lstrip())
    if "#" in lines[number]:
        return True
    for line in reversed(lines[:number]):
        text = line.strip()
        if text.startswith("#"):
            return True
        if not text:
            return False
        if len(line) - len(line.lstrip()) < indent:  # the parent key: its comment covers it
            return _documented(lines, lines.index(line))
    return False


@pytest.mark.parametrize(
    "path", sorted(CONF.glob("**/*.yaml")), ids=lambda p: str(p.relative_to(CONF))
)
def test_every_yaml_key_is_commented(path: Path) -> None:
    """Each key a YAML sets has a comment: on its line, above it, or above its block.

    The defaults list and a preset's sweep grid (`hydra.sweeper`, commented as a whole) are not
    keys of the config.
    """
    lines = path.read_text().splitlines()
    assert lines[0].startswith("#"), "the file starts with what the option is"
    for number, line in enumerate(lines):
        match = re.match(r"^\s*([A-Za-z_][\w.]*):", line)
        if match and match[1] == "sweeper":
            assert _documented(lines, number), f"{path.name}:{number + 1}: the sweep grid"
            break
        section = line.split("#")[0].rstrip().endswith(":")  # its keys are checked one by one
        if not match or section or match[1] == "defaults" or line.lstrip().startswith("-"):
            continue
        assert _documented(lines, number), f"{path.name}:{number + 1}: {line.strip()}"


def test_ablation_options_set_exactly_their_table_settings(tmp_path: Path) -> None:
    base = _compose([], tmp_path)["model"]
    for ablation in ABLATIONS:
        model = _compose([f"ablation={ablation.name}"], tmp_path)["model"]
        changed = {k: v for k, v in model.items() if base[k] != v}
        assert changed == {k: v for k, v in ablation.settings.items() if base[k] != v}
        assert set(ablation.settings) <= set(model)


def test_paper_presets_validate_and_carry_table4_settings(tmp_path: Path) -> None:
    criteo = _compose(["experiment=paper_criteo", f"dataset.path={tmp_path}/c.txt"], tmp_path)
    validate_config(criteo)
    assert criteo["model"]["embedding_dim"] == 48
    assert criteo["model"]["dnn_hidden_units"] == [1024, 1024, 1024]
    assert (criteo["trainer"]["batch_size"], criteo["trainer"]["learning_rate"]) == (512, 0.01)
    avazu = _compose(["experiment=paper_avazu", f"dataset.path={tmp_path}/a.csv"], tmp_path)
    validate_config(avazu)
    assert (avazu["model"]["embedding_dim"], avazu["model"]["l2_reg_embedding_field"]) == (96, 1e-8)


@pytest.mark.parametrize("dataset", ["criteo", "avazu"])
def test_paper_numbers_go_beside_runs_of_the_paper_presets(dataset: str, tmp_path: Path) -> None:
    """The report reads the presets themselves: a preset run's logged params match, a changed
    value does not."""
    from fefm_lab.report.paper import TABLE5, paper_numbers, paper_settings
    from fefm_lab.tracking.confighash import flatten
    from fefm_lab.tracking.run_logging import param_value

    resolved = _compose([f"experiment=paper_{dataset}", f"dataset.path={tmp_path}/x"], tmp_path)
    logged = {key: param_value(value) for key, value in flatten(resolved).items()}
    assert (
        paper_settings(dataset)["model.l2_reg_embedding_field"]
        == logged["model.l2_reg_embedding_field"]
    )
    assert paper_settings(dataset)["model.dnn_hidden_units"] == "[1024, 1024, 1024]"
    assert paper_numbers(dataset, "deepfefm", "no_linear", logged) == TABLE5[(dataset, "no_linear")]
    changed = _compose(
        [f"experiment=paper_{dataset}", f"dataset.path={tmp_path}/x", "model.l2_reg_dnn=0"],
        tmp_path,
    )
    logged = {key: param_value(value) for key, value in flatten(changed).items()}
    assert paper_numbers(dataset, "deepfefm", "none", logged) is None


def test_sweep_presets_expand_to_their_grids() -> None:
    # the adaptive-seeds sweeper's reach: every ablation but `control` on seeds 1..max_seeds
    jobs, base = expand_jobs(["experiment=synthetic_ablation"])
    max_seeds = base.hydra.sweeper.max_seeds
    assert len(jobs) == (len(ABLATIONS) - 1) * max_seeds
    assert {j for job in jobs for j in job if j.startswith("ablation=")} == {
        f"ablation={name}" for name in ABLATION_NAMES if name != "control"
    }
    assert {j for job in jobs for j in job if j.startswith("seed=")} == {
        f"seed={seed}" for seed in range(1, max_seeds + 1)
    }
    grid, _ = expand_jobs(["experiment=ablation_grid", "seed=1"])
    assert len(grid) == 16  # the command line's seed=1 replaces the preset's seed sweep


@pytest.mark.parametrize("preset", ["debug=tiny", "experiment=synthetic_ablation", "debug=fast"])
def test_presets_never_undo_an_ablation(preset: str, tmp_path: Path) -> None:
    shallow = _compose([preset, "ablation=shallow"], tmp_path)
    assert shallow["model"]["dnn_hidden_units"] == [] and ablation_label(shallow) == "shallow"


def test_ablation_label_reads_the_flags(tmp_path: Path) -> None:
    both = _compose(["model.use_linear=false", "model.use_fefm=false"], tmp_path)
    assert ablation_label(both) == "no_fefm_logit+no_linear"
    shallow = _compose(["ablation=shallow", "model.symmetric=false"], tmp_path)
    assert ablation_label(shallow) == "shallow+asymmetric"
    # without a DNN the DNN-input flags mean nothing; shallow leads the label
    odd = _compose(["model.dnn_hidden_units=[]", "model.exclude_feature_embed_in_dnn=true",
                    "model.use_linear=false"], tmp_path)  # fmt: skip
    assert ablation_label(odd) == "shallow+no_linear"
    fm = _compose(["model=fm", "ablation=no_linear"], tmp_path)
    assert ablation_label(fm) == "no_linear"  # other models keep the group's name


ALL_DEEPFEFM_KEYS = (
    "task, l2_mode, l2_reg_linear, fm_group, use_linear, l2_reg_embedding_feat, "
    "l2_reg_embedding_field, symmetric, dnn_hidden_units, dnn_activation, dnn_dropout, "
    "dnn_use_bn, l2_reg_dnn, use_fefm, exclude_feature_embed_in_dnn, use_fefm_embed_in_dnn "
    "(and embedding_dim)"
)
FM_KEYS = (
    "task, l2_mode, l2_reg_linear, fm_group, use_linear, l2_reg_embedding_feat (and embedding_dim)"
)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["trainer.learning_rate=abc"],
            "trainer.learning_rate: expected a finite number > 0, got 'abc'",
        ),
        (
            ["trainer.learning_rate=0"],
            "trainer.learning_rate: expected a finite number > 0, got 0.0",
        ),
        (
            ["trainer.learning_rate=inf"],
            "trainer.learning_rate: expected a finite number > 0, got inf",
        ),
        (
            ["trainer.learning_rate=nan"],
            "trainer.learning_rate: expected a finite number > 0, got nan",
        ),
        (["model.l2_reg_dnn=inf"], "model.l2_reg_dnn: expected a finite number >= 0, got inf"),
        (["model.dnn_dropout=1.5"], "model.dnn_dropout: expected a number in [0, 1), got 1.5"),
        (["model.embedding_dim=0"], "model.embedding_dim: expected an integer >= 1, got 0"),
        (["model.embedding_dim=1.5"], "model.embedding_dim: expected an integer >= 1, got 1.5"),
        (
            ["model.dnn_hidden_units=[64,0]"],
            "model.dnn_hidden_units: expected a list of layer widths >= 1 ([] = no DNN), "
            "got [64, 0]",
        ),
        (
            ["model=deepfm", "model.dnn_hidden_units=[]"],
            "model.dnn_hidden_units: expected a non-empty list of layer widths >= 1, got []",
        ),
        (["trainer.optimizer=sgd"], "trainer.optimizer: expected 'adagrad' or 'adam', got 'sgd'"),
        (["seed=-1"], "seed: expected an integer >= 0, got -1"),
        (["seed=abc"], "seed: expected an integer >= 0, got 'abc'"),
        (["threads=0"], "threads: expected null or an integer >= 1, got 0"),
        (["model.use_linear=maybe"], "model.use_linear: expected true or false, got 'maybe'"),
        (
            ["trainer.early_stopping.patience=-1"],
            "trainer.early_stopping.patience: expected an integer >= 0, got -1",
        ),
        (["mlflow.ui_port=70000"], "mlflow.ui_port: expected a port 1..65535, got 70000"),
        (["report.margin.auc=0"], "report.margin.auc: expected a finite number > 0, got 0"),
        (
            ["report.margin.logloss=-0.1"],
            "report.margin.logloss: expected a finite number > 0, got -0.1",
        ),
        (["report.alpha=1"], "report.alpha: expected a number in (0, 1), got 1"),
        (["+report.margin.acu=0.1"], "report.margin.acu: unknown key; allowed: auc, logloss"),
        (
            ["model=fm", "+model.use_fefm=true"],
            f"model.use_fefm: not a parameter of model 'fm'; it takes {FM_KEYS}",
        ),
        (
            ["model=fm", "ablation=no_fefm_logit"],
            f"model.use_fefm: not a parameter of model 'fm'; it takes {FM_KEYS}",
        ),
        (
            ["+model.foo=1"],
            f"model.foo: not a parameter of model 'deepfefm'; it takes {ALL_DEEPFEFM_KEYS}",
        ),
        (
            ["model=lr", "+model.embedding_dim=4"],
            "model.embedding_dim: model 'lr' has no embeddings",
        ),
        (["+trainer.foo=1"], "trainer.foo: unknown key; allowed: optimizer, learning_rate,"),
        (["trainer.foo=1"], "trainer.foo: unknown key; allowed: optimizer, learning_rate,"),
        (["+sweep.nam=x"], "sweep.nam: unknown key; allowed: name, invocation, parent_run_id"),
        (
            ["model.name=fm"],
            "model.name: 'fm' set on the config of model 'deepfefm'; pick a model with model=fm",
        ),
        (["dataset.min_count=abc"], "dataset.min_count: expected an integer >= 1, got 'abc'"),
        (["dataset.min_count=0"], "dataset.min_count: expected an integer >= 1, got 0"),
        (
            ["dataset.header=true"],
            "dataset.header: unknown key; allowed: name, format, path, split, split_fractions,",
        ),
        (
            ["+seeds=3"],
            "seeds: unknown key; allowed: dataset, model, trainer, paths, mlflow, server, seed,",
        ),
    ],
)
def test_bad_values_raise_config_errors_naming_the_key(overrides, message, tmp_path) -> None:
    with pytest.raises(ConfigError) as raised:
        validate_config(_compose(overrides, tmp_path))
    assert str(raised.value).startswith(message)


def test_plain_dicts_are_checked_too(tmp_path: Path) -> None:
    resolved = _compose([], tmp_path)
    resolved["model"]["use_linear"] = "yes"  # never went through OmegaConf's type check
    with pytest.raises(ConfigError, match=r"^model.use_linear: expected true or false, got 'yes'$"):
        validate_config(resolved)
    resolved = _compose([], tmp_path)
    resolved["trainer"]["steps_per_epoch"] = 2.5
    with pytest.raises(ConfigError, match=r"^trainer.steps_per_epoch: expected null or an integer"):
        validate_config(resolved)


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["run", "model=foo"], "Could not find 'model/foo'"),
        (["run", "trainer.foo=1"], "error: trainer.foo: unknown key; allowed: optimizer,"),
        (
            ["run", "trainer.batch_size=0"],
            "error: trainer.batch_size: expected an integer >= 1, got 0",
        ),
        (
            ["run", "-m", "ablation=none,no_linear", "model.dnn_dropout=2"],
            (
                "error: in sweep job ablation=none model.dnn_dropout=2 paths.root_dir=",
                ": model.dnn_dropout: expected a number in [0, 1), got 2.0\n",
            ),
        ),
        (
            ["run", "-m", "model=fm", "ablation=glob(*)"],
            (
                "error: in sweep job model=fm ablation=asymmetric paths.root_dir=",
                ": model.symmetric: not a parameter of model 'fm'",
            ),
        ),
        (["run", "seed=1,2"], "--multirun"),
        (["show", "ablation=nope"], "Could not find 'ablation/nope'"),
        (["show", "model.use_linear=maybe"], "error: model.use_linear: expected true or false"),
        (["frobnicate"], "unknown command 'frobnicate'"),
    ],
)
def test_cli_config_errors_exit_2_before_any_data(arguments, message, tmp_path, capsys) -> None:
    assert cli.main([*arguments, f"paths.root_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    for needle in (message,) if isinstance(message, str) else message:
        assert needle in err
    assert "Traceback" not in err
    assert not (tmp_path / "data").exists() and not (tmp_path / "mlflow.db").exists()


def test_help_lists_groups_and_options(capsys) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "  ablation:\n" in out and "* deepfefm" in out
    no_linear = next(a for a in ABLATIONS if a.name == "no_linear")
    assert f"no_linear                  {no_linear.doc}" in out
    assert cli.main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "fefm-lab run [-m]" in out and "paper_criteo" in out


def test_show_prints_the_resolved_config(tmp_path, capsys) -> None:
    assert cli.main(["show", "model=fm", f"paths.root_dir={tmp_path}"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["model"] == {"name": "fm", **model_defaults("fm"), "embedding_dim": 16}
    assert shown["mlflow"]["tracking_uri"] == f"sqlite:///{tmp_path}/mlflow.db"
