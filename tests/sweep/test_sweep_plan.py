"""Before Hydra starts: the sweep's jobs, their validation and the sweep's name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fefm_lab import cli
from fefm_lab.config.compose import group_options
from fefm_lab.errors import ConfigError
from fefm_lab.sweep.plan import expand_jobs, plan_sweep, sweep_name, threads_per_job


def test_choice_and_range_sweeps_expand_to_their_product_in_order() -> None:
    jobs, _ = expand_jobs(["ablation=none,no_linear", "seed=range(1,3)", "model.embedding_dim=4"])
    assert jobs == [
        ["ablation=none", "seed=1", "model.embedding_dim=4"],
        ["ablation=none", "seed=2", "model.embedding_dim=4"],
        ["ablation=no_linear", "seed=1", "model.embedding_dim=4"],
        ["ablation=no_linear", "seed=2", "model.embedding_dim=4"],
    ]


def test_glob_lists_the_group_options() -> None:
    jobs, _ = expand_jobs(["ablation=glob(no_*)"])
    assert jobs == [
        ["ablation=no_feature_embed_in_dnn"],
        ["ablation=no_fefm_embed_in_dnn"],
        ["ablation=no_fefm_logit"],
        ["ablation=no_linear"],
    ]


def test_the_command_line_overrides_the_presets_sweep_in_place() -> None:
    jobs, base = expand_jobs(["experiment=ablation_grid", "seed=7"])
    assert len(jobs) == 16  # the preset's four flags, each true and false; one seed, not three
    assert all(job[4] == "seed=7" and job[5] == "experiment=ablation_grid" for job in jobs)
    assert base.hydra.runtime.choices.experiment == "ablation_grid"


def _options(group: str) -> list[str]:
    return group_options(group)


def test_an_interval_sweep_is_refused_with_the_override_named() -> None:
    with pytest.raises(ConfigError, match=r"model.dnn_dropout=interval\(0,0.5\): only choice"):
        expand_jobs(["model.dnn_dropout=interval(0,0.5)"])


def test_a_bad_job_stops_the_sweep_before_anything_starts(tmp_path: Path, capsys) -> None:
    arguments = ["run", "-m", "seed=1,-1", f"paths.root_dir={tmp_path}"]
    assert cli.main(arguments) == 2
    err = capsys.readouterr().err
    job = f"seed=-1 paths.root_dir={tmp_path}"
    assert f"error: in sweep job {job}: seed: expected an integer >= 0, got -1" in err
    assert "Traceback" not in err
    assert not (tmp_path / "mlflow.db").exists()  # no store, no parent run, no job


def test_an_unknown_launcher_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hydra/launcher"):
        plan_sweep(["hydra/launcher=nonexistent", "seed=1,2", f"paths.root_dir={tmp_path}"])


def test_sweep_names() -> None:
    _, base = expand_jobs(["experiment=synthetic_ablation"])
    assert sweep_name(base, ["experiment=synthetic_ablation"]) == "synthetic_ablation"
    _, base = expand_jobs(["sweep.name=mine", "seed=1,2"])
    assert sweep_name(base, ["sweep.name=mine", "seed=1,2"]) == "mine"
    overrides = ["seed=1,2", "paths.root_dir=/x", "model=fm", "hydra/launcher=joblib"]
    _, base = expand_jobs(overrides)
    assert sweep_name(base, overrides) == "sweep_model=fm_seed=1,2"


def test_joblib_jobs_share_the_cores() -> None:
    plan = plan_sweep(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=1,2"])
    cores = os.cpu_count() or 1
    assert plan.launcher.endswith("JoblibLauncher") and plan.threads == max(1, cores // 2)
    assert [c["seed"] for c in plan.configs] == [1, 2]
    assert plan_sweep(["seed=1,2"]).threads is None  # the basic launcher runs one at a time
    _, base = expand_jobs(["hydra/launcher=joblib", "hydra.launcher.n_jobs=-1"])
    assert threads_per_job(base.hydra.launcher) == 1
