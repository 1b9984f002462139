"""A repeated sweep after a change to the maths reruns instead of reusing, and the report keeps
the two code versions apart (slow: three tiny sweeps through the command line, in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fefm_lab import cli
from fefm_lab.report.ablation_table import load_runs
from fefm_lab.tracking import confighash
from fefm_lab.tracking.confighash import current_code_version
from fefm_lab.tracking.store import open_store

pytestmark = pytest.mark.slow

SWEEP = [
    "debug=tiny", "dataset.synthetic.rows=3000", "trainer.steps_per_epoch=null",
    "ablation=none,no_linear", "seed=1",
]  # fmt: skip


def _sweep(root: Path) -> list[str]:
    return [
        "run",
        "-m",
        *SWEEP,
        f"paths.root_dir={root}",
        "mlflow.experiment=versions",
        "sweep.name=versions",
    ]


def _jobs(root: Path):
    store = open_store(f"sqlite:///{root}/mlflow.db", "versions")
    return store, store.search("tags.role = 'job'")


def test_a_new_code_version_reruns_the_sweep(tmp_path: Path, monkeypatch, capsys) -> None:
    assert cli.main(_sweep(tmp_path)) == 0
    store, first = _jobs(tmp_path)
    assert len(first) == 2
    assert {r.data.tags["code_version"] for r in first} == {current_code_version()}

    capsys.readouterr()
    assert cli.main(_sweep(tmp_path)) == 0  # the same code: both configurations are reused
    assert capsys.readouterr().err.count("already FINISHED") == 2
    assert len(_jobs(tmp_path)[1]) == 2

    # The model/training code changed (what confighash.current_code_version would report after
    # an edit to the maths): the repeated sweep runs every configuration again.
    monkeypatch.setattr(confighash, "current_code_version", lambda: "0123456789abcdef")
    assert cli.main(_sweep(tmp_path)) == 0
    assert "already FINISHED" not in capsys.readouterr().err
    _, runs = _jobs(tmp_path)
    new = [r for r in runs if r.info.run_id not in {f.info.run_id for f in first}]
    assert len(new) == 2 and {r.info.status for r in new} == {"FINISHED"}
    assert {r.data.tags["code_version"] for r in new} == {"0123456789abcdef"}
    old_hashes = {r.data.tags["config_hash"] for r in first}
    assert not old_hashes & {r.data.tags["config_hash"] for r in new}

    # the report of the sweep takes the new runs only (the newest per seed): nothing mixed
    table = load_runs(store, "versions")
    assert set(table["run_id"]) == {r.info.run_id for r in new}
    assert set(table["code_version"]) == {"0123456789abcdef"}
