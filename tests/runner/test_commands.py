"""The data and UI subcommands: what they call and print."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from fefm_lab import cli
from fefm_lab.tracking import ui
from tests.local_ui import free_port


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


def test_synth_teacher_kind(tmp_path: Path, capsys) -> None:
    arguments = ["synth", f"paths.root_dir={tmp_path}", "synth.rows=400", "synth.teacher=deep"]
    assert cli.main(arguments) == 0
    written = tmp_path / "data" / "raw" / "synthetic_criteo_400_seed0.txt"
    manifest = json.loads(written.with_name(written.name + ".synth.json").read_text())
    assert manifest["teacher"] == "deep" and len(manifest["threshold_fields"]) == 6
    capsys.readouterr()
    assert cli.main(["synth", f"paths.root_dir={tmp_path}", "synth.teacher=wide"]) == 2
    assert "synth: teacher must be one of pairs, deep, received 'wide'" in capsys.readouterr().err


def test_prepare_caches_the_dataset(tmp_path: Path, capsys) -> None:
    arguments = ["prepare", f"paths.root_dir={tmp_path}", "dataset.synthetic.rows=500"]
    assert cli.main(arguments) == 0
    directory = Path(capsys.readouterr().out.split("prepared dataset: ")[1].strip())
    assert (directory / "manifest.json").is_file() and (directory / "feature_map.json").is_file()
    assert directory.parent == tmp_path / "data" / "prepared"


def test_ui_serves_the_configured_store_on_localhost(tmp_path, monkeypatch, capsys) -> None:
    calls = []

    def record(tracking_uri, listener):
        calls.append((tracking_uri, listener.getsockname(), listener.fileno() >= 0))
        listener.close()
        return "SIGINT"

    monkeypatch.setattr(ui, "serve_ui", record)
    port = free_port()
    assert cli.main(["ui", f"paths.root_dir={tmp_path}", f"mlflow.ui_port={port}"]) == 0
    assert calls == [(f"sqlite:///{tmp_path}/mlflow.db", ("127.0.0.1", port), True)]
    assert capsys.readouterr().out == (
        f"MLflow UI on http://127.0.0.1:{port} (Ctrl-C stops it)\nMLflow UI stopped (SIGINT)\n"
    )


def test_ui_names_a_taken_port(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(ui, "serve_ui", lambda *args: pytest.fail("must not serve"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert cli.main(["ui", f"paths.root_dir={tmp_path}", f"mlflow.ui_port={port}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no link to a UI that is not there
    assert f"error: mlflow.ui_port={port}: cannot listen on 127.0.0.1:{port} (" in captured.err
    assert "pick another port with mlflow.ui_port=PORT" in captured.err


def test_ui_refuses_a_tracking_server_uri(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(ui, "serve_ui", lambda *args: pytest.fail("must not serve"))
    uri = "http://127.0.0.1:1"
    assert cli.main(["ui", f"paths.root_dir={tmp_path}", f"mlflow.tracking_uri={uri}"]) == 2
    err = capsys.readouterr().err
    assert f"error: mlflow.tracking_uri={uri}: that tracking server serves the MLflow UI" in err


def test_ui_names_an_unknown_sweep(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(ui, "serve_ui", lambda *args: pytest.fail("must not serve"))
    assert cli.main(["ui", f"paths.root_dir={tmp_path}", "sweep=nope"]) == 2
    err = capsys.readouterr().err
    assert "sweep=nope: no such sweep in experiment 'fefm-lab'" in err
    assert "sweeps there: none" in err


@pytest.mark.parametrize("port", ["0", "70000", "abc"])
def test_ui_port_is_checked(port, tmp_path, capsys) -> None:
    assert cli.main(["ui", f"paths.root_dir={tmp_path}", f"mlflow.ui_port={port}"]) == 2
    assert "mlflow.ui_port: expected a port 1..65535" in capsys.readouterr().err


def _criteo_row(label: str, *, columns: int = 40, integer: str = "3") -> str:
    """A hand-written Criteo-format row: label, I1 = `integer`, blanks, one categorical value."""
    fields = [label, integer] + [""] * (columns - 3) + ["a1b2c3d4"]
    return "\t".join(fields)


def _prepared_dirs(root: Path) -> list[Path]:
    prepared = root / "data" / "prepared"
    if not prepared.is_dir():
        return []
    return [p for p in prepared.iterdir() if p.is_dir() and not p.name.startswith(".")]


@pytest.mark.parametrize(
    ("bad_line", "needle"),
    [
        (_criteo_row("1", columns=39), "expected 40 columns"),
        (_criteo_row("1", integer="x7"), "x7"),
        (_criteo_row("3"), "label"),
    ],
)
def test_prepare_stops_on_bad_data_with_exit_2_file_and_line(
    bad_line: str, needle: str, tmp_path: Path, capsys
) -> None:
    raw = tmp_path / "train.txt"
    raw.write_text("\n".join([_criteo_row("0"), _criteo_row("1"), bad_line, _criteo_row("0")]))
    arguments = ["prepare", f"paths.root_dir={tmp_path}", "dataset=criteo", f"dataset.path={raw}"]
    assert cli.main(arguments) == 2
    err = capsys.readouterr().err
    assert str(raw) in err and "line 3" in err and needle in err
    assert "Traceback" not in err
    assert _prepared_dirs(tmp_path) == []  # nothing a later run would trust


def test_prepare_skips_and_counts_bad_rows_when_asked(tmp_path: Path, capsys) -> None:
    raw = tmp_path / "train.txt"
    rows = [_criteo_row(str(i % 2)) for i in range(30)]
    rows[4] = _criteo_row("1", columns=12)
    raw.write_text("\n".join(rows) + "\n")
    arguments = [
        "prepare",
        f"paths.root_dir={tmp_path}",
        "dataset=criteo",
        f"dataset.path={raw}",
        "dataset.on_bad_rows=skip",
    ]
    assert cli.main(arguments) == 0
    (directory,) = _prepared_dirs(tmp_path)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["bad_rows"] == 1
    assert sum(split["rows"] for split in manifest["splits"].values()) == 29


def test_prepare_names_a_missing_file(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nowhere.txt"
    arguments = [
        "prepare",
        f"paths.root_dir={tmp_path}",
        "dataset=criteo",
        f"dataset.path={missing}",
    ]
    assert cli.main(arguments) == 2
    assert str(missing) in capsys.readouterr().err
