"""Before a sweep launches: where its launcher runs jobs, and what it refuses for that."""

from __future__ import annotations

import os

import pytest
from omegaconf import OmegaConf

from fefm_lab import cli
from fefm_lab.cluster.checks import check_launch, root_dir_override
from fefm_lab.cluster.launchers import LauncherPlacement, launcher_placement
from fefm_lab.cluster.preflight import placement_and_root
from fefm_lab.errors import ConfigError
from fefm_lab.uris import masked_uri


def _placement(*overrides: str) -> LauncherPlacement:
    cfg = cli.compose_config(list(overrides), with_hydra=True)
    return launcher_placement(OmegaConf.to_container(cfg.hydra.launcher, resolve=False))


def test_placement_of_each_launcher() -> None:
    assert _placement() == LauncherPlacement("basic", False, False)
    assert _placement("hydra/launcher=joblib") == LauncherPlacement("joblib", False, False)
    assert _placement("hydra/launcher=ray") == LauncherPlacement("ray", True, False)
    joined = _placement("hydra/launcher=ray", "hydra.launcher.ray.init.address=10.0.0.7:6379")
    assert joined == LauncherPlacement("ray", True, True, ("10.0.0.7",))
    assert not joined.loopback_cluster
    local_head = _placement("hydra/launcher=ray", "hydra.launcher.ray.init.address=127.0.0.1:6379")
    assert local_head.other_machines and local_head.loopback_cluster
    assert _placement("hydra/launcher=submitit_local") == LauncherPlacement(
        "submitit_local", True, False
    )
    assert _placement("hydra/launcher=submitit_slurm") == LauncherPlacement(
        "submitit_slurm", True, True
    )


def test_ray_config_joins_without_object_store_memory() -> None:
    cfg = cli.compose_config(
        ["hydra/launcher=ray", "hydra.launcher.ray.init.address=10.0.0.7:6379"], with_hydra=True
    )
    launcher = OmegaConf.to_container(cfg.hydra.launcher)
    assert launcher == {
        "_target_": "hydra_plugins.fefm_lab_launchers.ray_launcher.RayLauncher",
        "ray": {
            "init": {"address": "10.0.0.7:6379"},
            "remote": {"num_cpus": 1, "num_gpus": 0, "max_retries": 0},
        },
    }


def test_relative_root_dir_becomes_absolute_only_for_other_working_directories() -> None:
    ray = LauncherPlacement("ray", True, False)
    assert root_dir_override(".", ray) == [f"paths.root_dir={os.getcwd()}"]
    assert root_dir_override("/shared/fefm", ray) == []
    assert root_dir_override(".", LauncherPlacement("joblib", False, False)) == []
    cfg = cli.compose_config(["hydra/launcher=submitit_local"], with_hydra=True)
    assert placement_and_root(cfg)[1] == [f"paths.root_dir={os.getcwd()}"]


def _resolved(tmp_path, *overrides: str) -> dict:
    return cli.resolved_config([f"paths.root_dir={tmp_path}", *overrides])


SLURM = LauncherPlacement("submitit_slurm", True, True)
RAY_REMOTE = LauncherPlacement("ray", True, True, ("10.0.0.7",))
RAY_LOOPBACK = LauncherPlacement("ray", True, True, ("127.0.0.1",))


@pytest.mark.parametrize(
    ("uri", "placement", "why"),
    [
        ("sqlite:///mlflow.db", SLURM, "is a relative SQLite file"),
        ("sqlite:////shared/mlflow.db", RAY_REMOTE, "is an absolute SQLite file"),
        ("/shared/mlruns", SLURM, "is a local directory"),
        ("file:///shared/mlruns", SLURM, "is a local directory"),
        ("http://127.0.0.1:5000", RAY_REMOTE, "is on 127.0.0.1, which on every other machine"),
        ("http://localhost:5000", SLURM, "is on localhost"),
        ("postgresql://u@localhost/db", SLURM, "is on localhost"),
    ],
)
def test_local_only_tracking_is_refused_for_other_machines(tmp_path, uri, placement, why):
    resolved = _resolved(tmp_path, f"mlflow.tracking_uri={uri}")
    with pytest.raises(ConfigError) as error:
        check_launch(resolved, placement)
    text = str(error.value)
    assert text.startswith(f"mlflow.tracking_uri={masked_uri(uri)} {why}")  # no user shown
    assert f"hydra/launcher={placement.name} runs jobs on other machines" in text
    assert "set mlflow.tracking_uri=http://SERVER_HOST:PORT" in text


@pytest.mark.parametrize(
    ("uri", "placement"),
    [
        ("http://mlflow.lab:5000", RAY_REMOTE),
        ("http://127.0.0.1:5000", RAY_LOOPBACK),  # every node of a loopback cluster is here
        ("postgresql://u@db.lab/mlflow", SLURM),
        ("sqlite:///mlflow.db", LauncherPlacement("ray", True, False)),  # local Ray: paths only
    ],
)
def test_shared_tracking_is_accepted(tmp_path, uri, placement) -> None:
    check_launch(_resolved(tmp_path, f"mlflow.tracking_uri={uri}"), placement)


def test_relative_paths_are_refused_for_other_working_directories(tmp_path) -> None:
    server = "mlflow.tracking_uri=http://mlflow.lab:5000"
    resolved = _resolved(tmp_path, server, "paths.data_root=shared/data")
    with pytest.raises(ConfigError) as error:
        check_launch(resolved, SLURM)
    assert str(error.value) == (
        "paths.data_root=shared/data is relative, and hydra/launcher=submitit_slurm runs jobs in "
        "another working directory; give an absolute path on storage every node sees"
    )
    resolved = _resolved(tmp_path, server, "dataset=criteo", "dataset.path=raw/train.txt")
    with pytest.raises(ConfigError, match=r"^dataset.path=raw/train.txt is relative"):
        check_launch(resolved, LauncherPlacement("submitit_local", True, False))
    check_launch(resolved, LauncherPlacement("joblib", False, False))  # same directory: fine


def test_sweep_on_a_cluster_with_local_sqlite_exits_2_before_anything(tmp_path, capsys) -> None:
    code = cli.main(
        [
            "run", "-m", "hydra/launcher=ray", "hydra.launcher.ray.init.address=10.0.0.7:6379",
            "seed=1,2", "debug=tiny", f"paths.root_dir={tmp_path}",
        ]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db is an absolute SQLite file"
    )
    assert list(tmp_path.iterdir()) == []  # no database, no data, no outputs
