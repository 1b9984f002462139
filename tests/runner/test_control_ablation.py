"""`ablation=control`: the baseline's flags and data under another label and seed stream."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fefm_lab import cli
from fefm_lab.config.ablation import ablation_label, model_seed, seed_stream
from fefm_lab.config.compose import compose_config, resolve
from fefm_lab.tracking.confighash import config_hash, hashed_part
from fefm_lab.tracking.store import open_store

TINY = ["debug=tiny", "dataset.synthetic.rows=3000"]


def _resolved(tmp_path: Path, *overrides: str) -> dict:
    return resolve(compose_config([*overrides, f"paths.root_dir={tmp_path}"]))


def test_control_is_none_on_an_independent_seed_stream(tmp_path: Path) -> None:
    none = _resolved(tmp_path, "ablation=none", "seed=3")
    control = _resolved(tmp_path, "ablation=control", "seed=3")
    assert control["model"] == none["model"] and control["dataset"] == none["dataset"]
    assert (ablation_label(none), ablation_label(control)) == ("none", "control")
    assert (seed_stream(none), seed_stream(control)) == (0, 1)
    assert model_seed(none) == 3
    expected = int.from_bytes(hashlib.sha256(b"3:1").digest()[:4], "big") >> 1
    assert model_seed(control) == expected and expected not in range(0, 100)
    assert model_seed(_resolved(tmp_path, "ablation=control", "seed=4")) != expected
    # the hash: none's keeps its old form (no seed_stream key), control's differs
    assert "seed_stream" not in hashed_part(none)
    assert hashed_part(control) == {**hashed_part(none), "seed_stream": 1}
    assert config_hash(none, data_fingerprint="d", code_version="c") != config_hash(
        control, data_fingerprint="d", code_version="c"
    )
    # a flag ablation keeps its own label and stream 0
    shallow = _resolved(tmp_path, "ablation=shallow")
    assert ablation_label(shallow) == "shallow" and model_seed(shallow) == 1


@pytest.mark.slow  # two tiny training runs, about 30 s on 2 loaded cores
def test_control_and_none_share_data_not_runs(tmp_path: Path) -> None:
    common = [*TINY, f"paths.root_dir={tmp_path}", "mlflow.experiment=aa", "seed=2"]
    assert cli.main(["run", "ablation=none", *common]) == 0
    assert cli.main(["run", "ablation=control", *common]) == 0
    runs = {
        r.data.tags["ablation"]: r
        for r in open_store(f"sqlite:///{tmp_path}/mlflow.db", "aa").search()
    }
    assert set(runs) == {"none", "control"}
    none, control = runs["none"], runs["control"]
    assert none.data.tags["data_fingerprint"] == control.data.tags["data_fingerprint"]
    assert none.data.tags["seed"] == control.data.tags["seed"] == "2"
    flags = {k: v for k, v in none.data.params.items() if k.startswith("model.")}
    assert flags == {k: v for k, v in control.data.params.items() if k.startswith("model.")}
    assert none.data.tags["config_hash"] != control.data.tags["config_hash"]
    # other initialisation and shuffling: not a bit-identical run
    assert none.data.metrics["test_logloss"] != control.data.metrics["test_logloss"]
