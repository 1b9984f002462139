"""The data and UI subcommands: what they call and print."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fefm_lab import cli


def test_synth_writes_the_configured_file(tmp_path: Path, capsys) -> None:
    arguments = ["synth", f"paths.root_dir={tmp_path}", "synth.rows=300", "synth.format=avazu"]
    assert cli.main(arguments) == 0
    written = tmp_path / "data" / "raw" / "synthetic_avazu_300_seed0.txt"
    assert written.is_file() and len(written.read_text().splitlines()) == 301  # header + rows
    out = capsys.readouterr().out
    assert str(written) in out and "planted teacher's test AUC" in out


def test_synth_rejects_bad_values_with_exit_2(tmp_path: Path, capsys) -> None:
    assert cli.main(["synth", f"paths.root_dir={tmp_path}", "synth.rows=0"]) == 2
    assert "synth: rows must be >= 1" in capsys.readouterr().err


def test_prepare_caches_the_dataset(tmp_path: Path, capsys) -> None:
    arguments = ["prepare", f"paths.root_dir={tmp_path}", "dataset.synthetic.rows=500"]
    assert cli.main(arguments) == 0
    directory = Path(capsys.readouterr().out.split("prepared dataset: ")[1].strip())
    assert (directory / "manifest.json").is_file() and (directory / "feature_map.json").is_file()
    assert directory.parent == tmp_path / "data" / "prepared"


def test_ui_serves_the_configured_store_on_localhost(tmp_path, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: calls.append((path, argv)))
    assert cli.main(["ui", f"paths.root_dir={tmp_path}", "mlflow.ui_port=5999"]) == 0
    ((path, argv),) = calls
    assert path == sys.executable
    assert argv[1:] == [
        "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{tmp_path}/mlflow.db",
        "--host", "127.0.0.1", "--port", "5999",
    ]  # fmt: skip


@pytest.mark.parametrize("port", ["0", "70000", "abc"])
def test_ui_port_is_checked(port, tmp_path, capsys) -> None:
    assert cli.main(["ui", f"paths.root_dir={tmp_path}", f"mlflow.ui_port={port}"]) == 2
    assert "mlflow.ui_port: expected a port 1..65535" in capsys.readouterr().err
