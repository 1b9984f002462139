"""scripts/gpu_check.sh, its CPU variant: the pipeline a GPU machine runs, small and on the CPU."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.sh"


@pytest.mark.slow
def test_cpu_small_variant_generates_trains_and_writes_the_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        [
            "bash",
            str(SCRIPT),
            "--cpu",
            "--small",
            "--rows",
            "4000",
            "--steps",
            "3",
            "--python",
            sys.executable,
            "--work",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    values = json.loads((out / "gpu_check_cpu.json").read_text())
    assert values["device"] == "CPU" and values["steps"] == 3 and values["batch_size"] == 512
    assert values["data_rows"] == 4000 and values["cuda_build"] is False
    assert values["peak_gpu_memory_gib"] is None
    assert 0.0 < values["test_auc"] < 1.0 and values["samples_per_second"] > 0
    table = (out / "gpu_check_cpu.md").read_text()
    assert table.startswith("# Device check: paper preset, 3 steps on CPU")
    assert f"| test_auc | {values['test_auc']:.5f} |" in table


def test_gpu_variant_refuses_a_machine_without_nvidia_smi(tmp_path: Path) -> None:
    if shutil.which("nvidia-smi", path="/usr/bin:/bin"):
        pytest.skip("this machine has nvidia-smi: the check would run for real")
    result = subprocess.run(
        ["bash", str(SCRIPT), "--python", sys.executable, "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},  # no nvidia-smi on this PATH (nor on this machine)
    )
    assert result.returncode == 1
    assert "no NVIDIA GPU visible" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_option_is_refused_with_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT), "--gpus", "2"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "gpu_check.sh: unknown option --gpus (--help lists them)"
