"""The side-by-side benchmark: both training runners on a tiny .npz, and the summary maths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_peer  # noqa: E402

PEER_PYTHON = ROOT / ".bench-peer-venv" / "bin" / "python"
ROWS = {"train": 300, "val": 70, "test": 90}
BATCH = 64


@pytest.fixture
def tiny_npz(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    vocabulary = np.array([7, 5, 9, 4])
    arrays = {
        "sparse_names": np.array(["a", "b", "c", "d"]),
        "dense_names": np.array([], dtype=str),
        "vocabulary_sizes": vocabulary,
    }
    for split, rows in ROWS.items():
        arrays[f"sparse_{split}"] = (rng.random((rows, 4)) * vocabulary).astype(np.int32)
        arrays[f"dense_{split}"] = np.zeros((rows, 0), np.float32)
        arrays[f"labels_{split}"] = (rng.random(rows) < 0.3).astype(np.float32)
    path = tmp_path / "tiny.npz"
    np.savez(path, **arrays)
    return path


def spec_for(npz: Path, tmp_path: Path) -> Path:
    spec = {
        **bench_peer.HYPERPARAMETERS,
        "batch_size": BATCH,
        "eval_batch_size": 128,
        "npz": str(npz),
        "seed": 3,
        "embedding_dim": 4,
        "dnn_hidden_units": [8],
        "max_epochs": 2,
        "patience": 5,
        "steps_per_epoch": None,
        "evaluate": True,
        "l2_mode": "table",
        "predictions_out": str(tmp_path / "pred.npy"),
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def run_runner(python: Path | str, script: str, spec: Path) -> dict:
    done = subprocess.run(
        [str(python), str(ROOT / script), str(spec)], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_result(result: dict, tmp_path: Path) -> None:
    steps_per_epoch = -(-ROWS["train"] // BATCH)  # 5: four full batches and a partial one
    assert result["epoch_step_counts"] == [steps_per_epoch, 2 * steps_per_epoch]
    assert len(result["step_ends"]) == 2 * steps_per_epoch
    assert result["step_ends"] == sorted(result["step_ends"])
    assert 0 < result["build_seconds"] <= result["ready_seconds"] == result["step_ends"][0]
    assert len(result["val_logloss"]) == 2
    predictions = np.load(tmp_path / "pred.npy")
    assert predictions.shape == (ROWS["test"],)
    assert np.all((predictions > 0) & (predictions < 1))


def test_fefm_runner_trains_evaluates_and_times(tiny_npz, tmp_path):
    result = run_runner(sys.executable, "scripts/bench_fefm_run.py", spec_for(tiny_npz, tmp_path))
    assert result["implementation"] == "fefm-lab (l2_mode=table)"
    check_result(result, tmp_path)
    # 25 embedding rows x (k + 1 linear) + 6 pairs x 4 x 4 + DNN (4 x 4 + 6 -> 8, 8 -> 1) + bias
    assert result["parameters"] == 25 * 5 + 6 * 16 + (22 * 8 + 8) + 8 + 1


@pytest.mark.skipif(not PEER_PYTHON.exists(), reason="no .bench-peer-venv (make bench-peer)")
def test_reference_runner_trains_evaluates_and_times(tiny_npz, tmp_path):
    result = run_runner(PEER_PYTHON, "scripts/peer/deepctr_run.py", spec_for(tiny_npz, tmp_path))
    assert result["implementation"] == "deepctr"
    check_result(result, tmp_path)


def test_steady_step_seconds_skips_epoch_boundaries_partial_batches_and_warmup():
    # two epochs of 4 steps each; the last step of each epoch is a partial batch
    ends = [10.0, 11.0, 13.0, 16.0, 30.0, 31.0, 33.0, 34.0]
    result = {"step_ends": ends, "epoch_step_counts": [4, 8]}
    # usable intervals: epoch 1 -> [1, 2], epoch 2 -> [1, 2]; warmup 1 drops the first
    assert bench_peer.steady_step_seconds(result, 1024, 3000, warmup=1) == 2.0
    # no partial batch: epoch intervals [1, 2, 3] and [1, 2, 1]
    assert bench_peer.steady_step_seconds(result, 1000, 3000, warmup=0) == 1.5


def fake_run(reference, mode, k, ready, rate, aucs=None):
    runs = []
    for seed, auc in enumerate(aucs or [None]):
        run = {
            "l2_mode": None if reference else mode,
            "k": k,
            "dnn": [8],
            "seed": seed,
            "ready_seconds": ready,
            "samples_per_second": rate,
            "epochs": 3,
        }
        if auc is not None:
            run.update(test_auc=auc, test_logloss=0.45)
        runs.append(run)
    return runs


def test_summarise_computes_ratios_and_auc_gap():
    runs = (
        fake_run(True, None, 4, 80.0, 2000.0, [0.70, 0.72])
        + fake_run(False, "table", 4, 4.0, 6000.0, [0.71, 0.70])
        + fake_run(False, "batch", 4, 2.0, 12000.0, [0.69, 0.70])
    )
    sections, targets = bench_peer.summarise(runs, [(4, (8,))], (4, (8,)), 2)
    by_name = {t.name: t for t in targets}
    ready = by_name["ready to train sooner, k=4, DNN 8"]
    assert ready.measured == 40.0 and ready.met
    speed = by_name["steady throughput, k=4, DNN 8"]
    assert speed.measured == 6.0 and speed.met and "l2_mode=table: 3.00x" in speed.note
    gap = by_name["test AUC vs reference (mean of 2 seeds), l2_mode=batch"]
    assert gap.measured == pytest.approx(-0.015) and not gap.met
    assert by_name["test AUC vs reference (mean of 2 seeds), l2_mode=table"].measured == (
        pytest.approx(-0.005)
    )
    assert sections[1].rows[0][2] == "0.71000"
