"""Tracking store: experiment creation, resume lookups, sweep parent and its summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from fefm_lab.sweep.finish import finish_sweep
from fefm_lab.sweep.parent import open_parent
from fefm_lab.tracking.confighash import config_hash, flatten, hashed_part
from fefm_lab.tracking.run_logging import log_params, param_value
from fefm_lab.tracking.store import open_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    return open_store(f"sqlite:///{root}/mlflow.db", "tests", str(root / "artifacts"))


def test_flatten_and_param_values() -> None:
    flat = flatten({"model": {"name": "fm", "units": [64, 32], "empty": {}}, "seed": 1, "x": None})
    assert flat == {
        "model.name": "fm",
        "model.units": [64, 32],
        "model.empty": {},
        "seed": 1,
        "x": None,
    }
    assert param_value([64, 32]) == "[64, 32]"
    assert param_value(None) == "null"
    assert param_value(1e-05) == "1e-05"
    long = param_value("x" * 7000)
    assert len(long) == 6000 and long.endswith("...")


def test_config_hash_covers_the_computation_only() -> None:
    config = {
        "dataset": {"name": "criteo", "path": "/a/train.txt", "block_bytes": 1 << 20},
        "model": {"name": "deepfefm", "embedding_dim": 4},
        "trainer": {"learning_rate": 0.01, "verbose": True, "eval_batch_size": 4096},
        "seed": 1,
        "mlflow": {"tracking_uri": "sqlite:///a.db"},
        "paths": {"root_dir": "/a"},
    }

    def digest(values, data="d1", code="c1"):
        return config_hash(values, data_fingerprint=data, code_version=code)

    moved = {**config, "mlflow": {"tracking_uri": "sqlite:///b.db"}, "paths": {"root_dir": "/b"}}
    quiet = {**config, "trainer": {"learning_rate": 0.01, "verbose": False}}
    faster = {**config, "dataset": {"name": "criteo", "path": "/b/copy.txt", "shard_rows": 7}}
    assert digest(config) == digest(moved) == digest(quiet) == digest(faster)
    assert hashed_part(config)["trainer"] == {"learning_rate": 0.01}
    assert hashed_part(config)["dataset"] == {"name": "criteo"}
    assert digest(config) != digest({**config, "seed": 2})
    assert digest(config) != digest({**config, "model": {"name": "deepfefm", "embedding_dim": 8}})
    assert digest(config) != digest(config, data="d2")  # other data under the same path
    assert digest(config) != digest(config, code="c2")  # other maths
    assert len(digest(config)) == 16


def test_open_store_is_idempotent(store, tmp_path: Path) -> None:
    again = open_store(store.tracking_uri, "tests")
    assert again.experiment_id == store.experiment_id
    experiment = store.client.get_experiment(store.experiment_id)
    assert experiment.artifact_location.startswith("file://")


def test_finished_lookup_and_sweep_summary(store) -> None:
    client = store.client
    parent, resumed = open_parent(store, "s1", "first", {})
    assert not resumed
    assert open_parent(store, "s1", "second", {}) == (parent, True)

    def child(digest: str, status: str, auc: float | None, outcome: str, reason: str = "") -> str:
        tags = {
            "role": "job",
            "config_hash": digest,
            "mlflow.parentRunId": parent,
            "outcome": outcome,
        }
        if reason:
            tags["reason"] = reason
        run_id = client.create_run(
            store.experiment_id, run_name=f"run {digest}", tags=tags
        ).info.run_id
        if auc is not None:
            client.log_metric(run_id, "test_auc", auc)
            client.log_metric(run_id, "test_logloss", 0.4)
        client.set_terminated(run_id, status)
        return run_id

    first_failure = child("h1", "FAILED", None, "failed", "TrainingDiverged: nan")
    assert store.finished_run_with_hash("h1") is None
    rerun = child("h1", "FINISHED", 0.7, "finished")
    child("h2", "FINISHED", 0.8, "finished")
    child("h3", "FINISHED", None, "skipped", "invalid model configuration: no logit")
    child("h4", "FAILED", None, "failed", "ValueError: boom")
    assert store.finished_run_with_hash("h1").info.run_id == rerun
    assert store.finished_run_with_hash("h3") is not None  # skipped configs are not retried

    summary = finish_sweep(store, parent)
    statuses = {row["run"]: row["status"] for row in summary.rows}
    assert statuses == {
        "run h1": "finished",
        "run h2": "finished",
        "run h3": "skipped",
        "run h4": "failed",
    }
    assert [row["reason"] for row in summary.failed] == ["ValueError: boom"]
    assert first_failure not in {row["run_id"] for row in summary.rows}
    parent_run = client.get_run(parent)
    assert parent_run.info.status == "FAILED"
    assert parent_run.data.metrics["runs_finished"] == 2
    assert parent_run.data.metrics["runs_failed"] == 1
    assert parent_run.data.metrics["runs_skipped"] == 1
    artifacts = {a.path for a in client.list_artifacts(parent)}
    assert artifacts == {"sweep_summary.md", "sweep_summary.csv", "report"}
    assert parent_run.data.tags["report"] == "logged"  # from the two finished runs


def test_log_params_flattens_everything(store) -> None:
    run_id = store.client.create_run(store.experiment_id).info.run_id
    resolved = {"model": {"name": "fm", "units": [1, 2]}, **{f"k{i}": i for i in range(150)}}
    log_params(store.client, run_id, resolved)
    params = store.client.get_run(run_id).data.params
    assert params["model.units"] == "[1, 2]" and params["k149"] == "149" and len(params) == 152
