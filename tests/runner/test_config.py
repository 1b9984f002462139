"""Config groups: every option composes and validates; mistakes name the key and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from fefm_lab import cli
from fefm_lab.errors import ConfigError
from fefm_lab.runner import MODEL_PARAMETERS, ablation_label, resolve, validate_config
from fefm_lab.sweep.plan import expand_jobs

CONF = Path(cli.config_dir())
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and not p.name.startswith("_"))
EXPERIMENT_DATA = {"paper_criteo": "criteo", "paper_avazu": "avazu"}


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_and_ablation_options() -> None:
    assert {
        "dataset",
        "model",
        "ablation",
        "trainer",
        "experiment",
        "debug",
        "paths",
        "mlflow",
    } <= set(GROUPS)
    assert _options("ablation") == sorted(
        ["none", "no_fefm_logit", "no_linear", "no_feature_embed_in_dnn", "no_fefm_embed_in_dnn",
         "shallow", "asymmetric"]
    )  # fmt: skip
    assert _options("model") == sorted(MODEL_PARAMETERS)


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS if g != "dataset" for o in _options(g)]
)
def test_every_option_composes_and_validates(group: str, option: str, tmp_path: Path) -> None:
    overrides = [f"{group}={option}", f"paths.root_dir={tmp_path}"]
    if group == "experiment" and option in EXPERIMENT_DATA:
        overrides.append(f"dataset.path={tmp_path}/{EXPERIMENT_DATA[option]}.txt")
    resolved = resolve(cli.compose_config(overrides))
    if group != "experiment" or option not in EXPERIMENT_DATA:
        validate_config(resolved)
    assert resolved["mlflow"]["tracking_uri"] == f"sqlite:///{tmp_path}/mlflow.db"
    if group == "ablation":
        assert resolved["ablation"] == option
        assert ablation_label(resolved) == option
    if group == "model":
        assert resolved["model"]["name"] == option


@pytest.mark.parametrize("option", _options("dataset"))
def test_every_dataset_option_composes(option: str, tmp_path: Path) -> None:
    resolved = resolve(cli.compose_config([f"dataset={option}", f"paths.root_dir={tmp_path}"]))
    assert resolved["dataset"]["name"]


def test_paper_presets_carry_table4_settings() -> None:
    criteo = resolve(cli.compose_config(["experiment=paper_criteo"]))
    assert criteo["model"]["embedding_dim"] == 48
    assert criteo["model"]["dnn_hidden_units"] == [1024, 1024, 1024]
    assert criteo["trainer"]["batch_size"] == 512
    avazu = resolve(cli.compose_config(["experiment=paper_avazu"]))
    assert (avazu["model"]["embedding_dim"], avazu["model"]["l2_reg_embedding_field"]) == (96, 1e-8)


def test_sweep_presets_expand_to_their_grids() -> None:
    jobs, _ = expand_jobs(["experiment=synthetic_ablation"])
    assert len(jobs) == 7 * 3
    assert {j for job in jobs for j in job if j.startswith("seed=")} == {
        "seed=1",
        "seed=2",
        "seed=3",
    }
    grid, _ = expand_jobs(["experiment=ablation_grid", "seed=1"])
    assert len(grid) == 16  # the command line's seed=1 replaces the preset's seed sweep


def test_model_parameters_match_the_builders() -> None:
    from fefm_lab.model import model_parameters

    for name, keys in MODEL_PARAMETERS.items():
        assert sorted(keys) == sorted(k for k in model_parameters(name) if k != "seed"), name


@pytest.mark.parametrize("preset", ["debug=tiny", "experiment=synthetic_ablation", "debug=fast"])
def test_presets_never_undo_an_ablation(preset: str) -> None:
    shallow = resolve(cli.compose_config([preset, "ablation=shallow"]))
    assert shallow["model"]["dnn_hidden_units"] == [] and ablation_label(shallow) == "shallow"


def test_ablation_label_reads_the_flags() -> None:
    resolved = resolve(cli.compose_config(["model.use_linear=false", "model.use_fefm=false"]))
    assert ablation_label(resolved) == "no_fefm_logit+no_linear"
    shallow = resolve(cli.compose_config(["ablation=shallow", "model.symmetric=false"]))
    assert ablation_label(shallow) == "shallow+asymmetric"


@pytest.mark.parametrize(
    "override,key,expected",
    [
        ("trainer.learning_rate=abc", "trainer.learning_rate", "a number > 0"),
        ("trainer.learning_rate=0", "trainer.learning_rate", "a number > 0"),
        ("model.dnn_dropout=1.5", "model.dnn_dropout", "[0, 1)"),
        ("model.embedding_dim=0", "model.embedding_dim", "an integer >= 1"),
        ("model.dnn_hidden_units=[64,0]", "model.dnn_hidden_units", "widths >= 1"),
        ("trainer.optimizer=sgd", "trainer.optimizer", "'adagrad' or 'adam'"),
        ("seed=-1", "seed", "an integer >= 0"),
        ("model.use_linear=maybe", "model.use_linear", "true or false"),
        ("model=fm", "model.use_fefm", "not a parameter of model 'fm'"),
        ("trainer.early_stopping.patience=-1", "trainer.early_stopping.patience", ">= 0"),
    ],
)
def test_bad_values_raise_config_errors(override: str, key: str, expected: str) -> None:
    overrides = [override, "+model.use_fefm=true"] if override == "model=fm" else [override]
    with pytest.raises(ConfigError) as raised:
        validate_config(resolve(cli.compose_config(overrides)))
    assert str(raised.value).startswith(key) and expected in str(raised.value)


@pytest.mark.parametrize(
    "arguments,needle",
    [
        (["run", "model=foo"], "Could not find 'model/foo'"),
        (["run", "trainer.foo=1"], "trainer.foo"),
        (["run", "trainer.batch_size=0"], "trainer.batch_size: expected an integer >= 1"),
        (["run", "-m", "ablation=none,no_linear", "model.dnn_dropout=2"], "model.dnn_dropout"),
        (["run", "seed=1,2"], "--multirun"),
        (["show", "ablation=nope"], "Available options in 'ablation'"),
        (["frobnicate"], "unknown command 'frobnicate'"),
    ],
)
def test_cli_config_errors_exit_2_before_any_data(arguments, needle, tmp_path, capsys) -> None:
    assert cli.main([*arguments, f"paths.root_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "data").exists() and not (tmp_path / "mlflow.db").exists()


def test_help_lists_groups_and_options(capsys) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "ablation:" in out and "no_fefm_embed_in_dnn" in out and "* deepfefm" in out
    assert cli.main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "fefm-lab run [-m]" in out and "paper_criteo" in out


def test_show_prints_the_resolved_config(tmp_path, capsys) -> None:
    assert cli.main(["show", "model=fm", f"paths.root_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "name: fm" in out and f"tracking_uri: sqlite:///{tmp_path}/mlflow.db" in out
