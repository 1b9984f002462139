"""The one subprocess test: the installed console script, a config mistake, exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow  # a fresh interpreter imports Hydra and MLflow: about 18 s on 2 loaded cores
def test_installed_fefm_lab_reports_config_errors_with_exit_2(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "fefm-lab"
    result = subprocess.run(
        [str(script), "run", "trainer.learning_rate=-1", f"paths.root_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "error: trainer.learning_rate: expected a finite number > 0, got -1.0"
    )
    assert list(tmp_path.iterdir()) == []  # nothing read, nothing written
