"""`python -m scripts.bench all --smoke` (what `make bench BENCH_ARGS=--smoke` runs): every part
of bench.md end to end at tiny sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_smoke_writes_every_part_and_target(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    done = subprocess.run(
        [sys.executable, "-m", "scripts.bench", "--smoke", "--out", out, "--work", work],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads((out / "bench.json").read_text())
    assert payload["settings"]["smoke"] is True
    assert payload["settings"]["parts"] == ["prepare", "layer", "pipeline", "vocab", "checkpoint"]
    assert list(payload["sections"]) == [
        "Preparation at scale",
        "FEFM layer versus the machine (P = 15, batch 64)",
        "Input pipeline",
        "Input pipeline streaming cold shards",
        "Vocabulary size (training step time)",
        "Checkpoint overhead",
    ]
    names = [target["name"] for target in payload["targets"]]
    assert names == [
        "preparation rows/s at 4,000 rows",
        "preparation peak memory at 4,000 rows (45.8M only with --full)",
        "preparation memory flat: peak at 4,000 / peak at 2,000 rows",
        "FEFM layer forward+backward at k=8, share of matmul rate",
        "input pipeline batches/s over training steps/s",
        "input pipeline streaming cold shards (split > memory budget), samples/s",
        "step time at 500 vs 50 rows per table (l2_mode=batch)",
        "checkpoint overhead with the default settings, 500 rows per table",
    ]
    assert all(target["measured"] > 0 for target in payload["targets"])
    layer_runs = payload["sections"]["FEFM layer versus the machine (P = 15, batch 64)"]["runs"]
    # both FEFM paths, the shipped one (the kernel `make setup` built) first
    kernel, ops = "fused C++ kernel", "TensorFlow ops"
    assert [(run["k"], run["path"]) for run in layer_runs] == [
        (4, kernel),
        (4, ops),
        (8, kernel),
        (8, ops),
    ]
    assert all(run["speedup_over_tensorflow_ops"] > 0 for run in layer_runs[::2])
    prepared = payload["sections"]["Preparation at scale"]
    assert {key: value["rows"] for key, value in prepared.items()} == {
        "2000/fefm-lab": 2000,
        "2000/pandas": 2000,
        "4000/fefm-lab": 4000,
        "4000/pandas": 4000,
    }
    streamed = payload["sections"]["Input pipeline streaming cold shards"]
    # 6,000 rows at the shuffled 0.64 / 0.16 / 0.20 split, each train row streamed once
    assert streamed["samples"] == streamed["split_bytes"] // 160 > 3_000
    assert streamed["shards"] >= 3 and streamed["split_bytes"] > streamed["budget_bytes"]
    markdown = (out / "bench.md").read_text()
    assert "SMOKE RUN" in markdown and "## Targets" in markdown
    assert not (out / "summary.md").exists()  # smoke figures never reach the README
    assert not list(work.rglob("prepared_*"))  # probes clean up their prepared output
