"""The search space in Hydra's Optuna-sweeper syntax, and what `fefm-lab run -m` checks of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from fefm_lab import cli
from fefm_lab.errors import ConfigError
from fefm_lab.sweep.plan import expand_jobs
from fefm_lab.tuning.space import search_space, validation_values


def _space(*lines: str):
    return search_space(OverridesParser.create().parse_overrides(list(lines)))


def test_each_hydra_sweep_becomes_its_optuna_distribution() -> None:
    dimensions, fixed = _space(
        "trainer.learning_rate=tag(log, interval(0.01, 1.0))",
        "model.dnn_dropout=interval(0, 0.5)",
        "model.embedding_dim=choice(4, 8, 16)",
        "trainer.batch_size=range(128, 1024, 256)",
        "seed=tag(int, interval(1, 5))",
        "debug=tiny",
    )
    assert fixed == ["debug=tiny"]
    assert dimensions["trainer.learning_rate"].distribution == FloatDistribution(
        0.01, 1.0, log=True
    )
    assert dimensions["model.dnn_dropout"].distribution == FloatDistribution(0.0, 0.5)
    assert dimensions["model.embedding_dim"].distribution == CategoricalDistribution([4, 8, 16])
    # Python's range: 1024 excluded, so the last value is 896
    assert dimensions["trainer.batch_size"].distribution == IntDistribution(128, 896, step=256)
    assert dimensions["seed"].distribution == IntDistribution(1, 5)


def test_a_sampled_value_becomes_the_override_the_job_gets() -> None:
    dimensions, _ = _space(
        "trainer.learning_rate=tag(log, interval(0.01, 1.0))",
        "model.embedding_dim=choice(4, 8)",
        "ablation=choice(none, no_linear)",
    )
    assert dimensions["trainer.learning_rate"].override(0.0123) == "trainer.learning_rate=0.0123"
    assert dimensions["model.embedding_dim"].override(8) == "model.embedding_dim=8"
    assert dimensions["ablation"].override("no_linear") == "ablation=no_linear"


def test_a_later_override_of_a_key_replaces_the_earlier_one() -> None:
    dimensions, _ = _space(
        "trainer.learning_rate=interval(0.1, 0.2)", "trainer.learning_rate=interval(1, 2)"
    )
    assert list(dimensions) == ["trainer.learning_rate"]
    assert dimensions["trainer.learning_rate"].distribution == FloatDistribution(1.0, 2.0)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "trainer.learning_rate=interval(0.5, 0.1)",
            "an interval needs low < high, got 0.5, 0.1",
        ),
        (
            "trainer.learning_rate=tag(log, interval(0, 1))",
            "a log interval needs low > 0, got 0.0",
        ),
        ("seed=tag(int, interval(1.5, 3))", "an int interval needs integer bounds"),
    ],
)
def test_a_bad_dimension_names_the_override(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _space(line)
    assert str(raised.value) == f"{line}: {message}"


def test_the_plan_checks_each_category_and_the_bounds_of_each_interval() -> None:
    (override,) = OverridesParser.create().parse_overrides(["model.dnn_dropout=interval(0, 0.5)"])
    assert validation_values(override) == ["0.0", "0.5"]
    jobs, _ = expand_jobs(
        [
            "hydra/sweeper=optuna",
            "model.dnn_dropout=interval(0, 0.5)",
            "model.embedding_dim=choice(4, 8)",
        ]
    )
    assert jobs == [
        ["hydra/sweeper=optuna", "model.dnn_dropout=0.0", "model.embedding_dim=4"],
        ["hydra/sweeper=optuna", "model.dnn_dropout=0.0", "model.embedding_dim=8"],
        ["hydra/sweeper=optuna", "model.dnn_dropout=0.5", "model.embedding_dim=4"],
        ["hydra/sweeper=optuna", "model.dnn_dropout=0.5", "model.embedding_dim=8"],
    ]


def test_an_out_of_range_bound_stops_the_tuning_before_any_trial(tmp_path: Path, capsys) -> None:
    arguments = [
        "run", "-m", "hydra/sweeper=optuna", "model.dnn_dropout=interval(0, 1.5)",
        f"paths.root_dir={tmp_path}",
    ]  # fmt: skip
    assert cli.main(arguments) == 2
    err = capsys.readouterr().err
    assert "model.dnn_dropout=1.5" in err and "model.dnn_dropout: expected" in err
    assert "Traceback" not in err
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "optuna.db").exists()
