"""One rule for "the latest run of each configuration": resume, sweep summary and report agree."""

from __future__ import annotations

import time

import pytest

from fefm_lab.report.ablation_table import load_runs
from fefm_lab.sweep.finish import summary_rows
from fefm_lab.tracking.store import latest_per_config, open_store


@pytest.fixture
def store(tmp_path):
    return open_store(f"sqlite:///{tmp_path}/mlflow.db", "latest")


def _job(store, digest: str, seed: int, status: str, auc: float | None) -> str:
    tags = {"role": "job", "config_hash": digest, "seed": str(seed), "model": "deepfefm"}
    tags |= {"dataset": "synthetic", "ablation": "none", "outcome": status.lower()}
    run_id = store.client.create_run(store.experiment_id, run_name=digest, tags=tags).info.run_id
    if auc is not None:
        store.client.log_metric(run_id, "test_auc", auc)
        store.client.log_metric(run_id, "test_logloss", 0.4)
    store.client.set_terminated(run_id, status)
    time.sleep(0.01)  # distinct start times (milliseconds)
    return run_id


def test_latest_run_decides_everywhere(store) -> None:
    _job(store, "h1", 1, "FINISHED", 0.71)  # superseded by a failed rerun (force=true)
    failed = _job(store, "h1", 1, "FAILED", None)
    _job(store, "h2", 2, "FAILED", None)
    finished = _job(store, "h2", 2, "FINISHED", 0.72)  # a rerun that succeeded

    runs = store.search()
    assert [r.info.run_id for r in latest_per_config(runs)] == [failed, finished]
    assert [r.info.run_id for r in latest_per_config(reversed(runs))] == [failed, finished]

    # resume: h1's latest run failed, so it runs again; h2's finished one is reused
    assert store.finished_run_with_hash("h1") is None
    assert store.finished_run_with_hash("h2").info.run_id == finished
    # sweep summary: one row per configuration, its latest run
    assert {row["run_id"]: row["status"] for row in summary_rows(runs)} == {
        failed: "failed",
        finished: "finished",
    }
    # report: only configurations whose latest run finished, never an older finished run
    table = load_runs(store)
    assert list(table["run_id"]) == [finished] and list(table["auc"]) == [0.72]
