"""Smoke run of the open-benchmark path: DeepFEFM and DCN-V2 through the command line on a tiny
generated folder in Criteo_x1's published layout, tracked in MLflow, reported beside the published
numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fefm_lab import cli
from fefm_lab.data.checksums import file_md5
from fefm_lab.tracking.store import open_store

HEADER = ["label", *(f"I{i}" for i in range(1, 14)), *(f"C{i}" for i in range(1, 27))]
SIZES = {"train.csv": 2000, "valid.csv": 500, "test.csv": 500}
# the runs' sizes: small, so four runs take seconds (the preset's own are BARS's)
SMALL = [
    "model.embedding_dim=4",
    "model.dnn_hidden_units=[8]",
    "trainer.batch_size=128",
    "trainer.max_epochs=2",
    "trainer.steps_per_epoch=16",
    "trainer.eval_batch_size=4096",
    "trainer.verbose=false",
]


def write_criteo_x1(folder: Path, seed: int = 0) -> Path:
    """3,000 rows in Criteo_x1's layout (floats, integer ids) with a planted click rule: clicks
    follow C1's id and I1."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for name, rows in SIZES.items():
        floats = rng.random((rows, 13)).round(4)
        ids = rng.integers(0, 6, (rows, 26)) + 100 * np.arange(26)
        logit = -1.0 + 2.0 * (ids[:, 0] < 3) + 1.5 * floats[:, 0] - 1.0
        labels = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
        lines = [
            ",".join([str(labels[r]), *map(str, floats[r]), *map(str, ids[r])]) for r in range(rows)
        ]
        (folder / name).write_text(",".join(HEADER) + "\n" + "\n".join(lines) + "\n")
    return folder


@pytest.mark.slow
def test_deepfefm_and_dcnv2_beside_the_published_numbers(tmp_path, capsys):
    folder = write_criteo_x1(tmp_path / "Criteo_x1")
    md5 = ",".join(file_md5(folder / name) for name in SIZES)
    common = [
        "experiment=bars_criteo_x1",
        f"dataset.path={folder}",
        f"dataset.md5=[{md5}]",
        f"paths.root_dir={tmp_path}",
        *SMALL,
    ]
    for model in ("deepfefm", "dcnv2"):
        for seed in (1, 2):
            assert cli.main(["run", *common, f"model={model}", f"seed={seed}"]) == 0
    capsys.readouterr()

    store = open_store(f"sqlite:///{tmp_path}/mlflow.db", "bars_criteo_x1")
    runs = store.search()
    assert sorted((r.data.tags["model"], r.data.tags["seed"]) for r in runs) == [
        ("dcnv2", "1"),
        ("dcnv2", "2"),
        ("deepfefm", "1"),
        ("deepfefm", "2"),
    ]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["dataset"] == "criteo_x1"
        params = run.data.params
        assert params["trainer.early_stopping.monitor"] == "val_auc"
        assert params["dataset.split"] == "given"
    # one prepared dataset for every seed and model, its splits the files' row counts
    prepared = list((tmp_path / "data" / "prepared").glob("criteo_x1-*"))
    assert len(prepared) == 1

    assert (
        cli.main(["report", "mlflow.experiment=bars_criteo_x1", f"paths.root_dir={tmp_path}"]) == 0
    )
    out = capsys.readouterr().out
    assert "**Beside the open benchmark.**" in out
    by_model = {
        line.split("|")[2].strip(): line for line in out.splitlines() if "| criteo_x1 |" in line
    }
    dcn = by_model["dcnv2"].split("|")
    assert dcn[3].strip() == "2"  # seeds
    assert dcn[5].strip() == "0.81394 ± 0.00020 (mean of 5)"
    assert "none published" in by_model["deepfefm"]
    assert "0.81381 ± 0.00008 (mean of 5)" in by_model["deepfm"]  # not run: for context
    assert (tmp_path / "results" / "bars_criteo_x1" / "published_comparison.csv").is_file()
