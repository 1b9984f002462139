"""Every bad tracking store and output path is one line naming it, exit 2, nothing left behind."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fefm_lab import cli
from fefm_lab.tracking.store import open_store


def _run(capsys, *arguments: str) -> tuple[int, str]:
    code = cli.main(["run", "debug=tiny", *arguments])
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err


def test_garbage_database_file(tmp_path: Path, capsys) -> None:
    database = tmp_path / "mlflow.db"
    database.write_bytes(b"not a database at all\n" * 100)
    code, err = _run(capsys, f"paths.root_dir={tmp_path}")
    assert code == 2
    assert err == (
        f"error: mlflow.tracking_uri=sqlite:///{database}: {database} is not an SQLite database "
        "(it does not start with SQLite's header)\n"
    )
    assert database.read_bytes() == b"not a database at all\n" * 100  # left as it was


def test_truncated_database_file(tmp_path: Path, capsys) -> None:
    database = tmp_path / "mlflow.db"
    open_store(f"sqlite:///{database}", "made")
    data = database.read_bytes()
    database.write_bytes(data[: len(data) // 3])
    capsys.readouterr()  # MLflow's own lines while it made the database
    code, err = _run(capsys, f"paths.root_dir={tmp_path}")
    assert code == 2
    assert err.startswith(
        f"error: mlflow.tracking_uri=sqlite:///{database}: not a usable MLflow database "
        "(damaged or truncated?): "
    )
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("uri", ["file:///{root}/mlruns", "{root}/mlruns"])
def test_file_store_is_refused_with_the_reason(tmp_path: Path, capsys, uri: str) -> None:
    uri = uri.format(root=tmp_path)
    code, err = _run(capsys, f"paths.root_dir={tmp_path}", f"mlflow.tracking_uri={uri}")
    assert code == 2
    assert err == (
        f"error: mlflow.tracking_uri={uri}: a file store (a directory of runs): MLflow 3 "
        "deprecates file stores and refuses to create new ones; use sqlite:///PATH/mlflow.db "
        "(one machine) or http://HOST:PORT (a tracking server: `fefm-lab server`)\n"
    )
    assert not (tmp_path / "mlruns").exists()


def test_store_in_a_directory_that_cannot_be_created(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    code, err = _run(
        capsys, f"paths.root_dir={tmp_path}", f"mlflow.tracking_uri=sqlite:///{blocker}/sub/m.db"
    )
    assert code == 2
    assert err == (
        f"error: mlflow.tracking_uri=sqlite:///{blocker}/sub/m.db: cannot create the directory "
        f"{blocker}/sub: Not a directory\n"
    )


def test_hydra_run_dir_that_cannot_be_created(tmp_path: Path, capsys) -> None:
    code, err = _run(capsys, f"paths.root_dir={tmp_path}", "hydra.run.dir=/proc/x")
    assert code == 2
    assert err.startswith("error: hydra.run.dir=/proc/x: cannot be created in /proc: ")
    assert err.count("\n") == 1
    assert not (tmp_path / "mlflow.db").exists()  # refused before the store was made


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_store_under_a_read_only_directory(tmp_path: Path) -> None:
    """A read-only bind mount in a mount namespace of the test's own (root ignores mode bits)."""
    root = tmp_path / "ro"
    root.mkdir()
    program = (
        "import sys; from fefm_lab import cli; "
        f"sys.exit(cli.main(['run', 'debug=tiny', 'paths.root_dir={root}', "
        f"'hydra.run.dir={tmp_path}/out']))"
    )
    script = (
        f"mount --bind {root} {root} && mount -o remount,bind,ro {root} && "
        f'exec {sys.executable} -c "{program}"'
    )
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "mount" in result.stderr and result.returncode == 32:
        pytest.skip(f"no read-only bind mount here: {result.stderr.strip()}")
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"error: mlflow.tracking_uri=sqlite:///{root}/mlflow.db: the directory {root} is not "
        "writable\n"
    )
    assert list(root.iterdir()) == []


def test_start_with_the_tracking_server_down_is_one_line(tmp_path: Path, capsys) -> None:
    from tests.local_ui import free_port

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    code, err = _run(capsys, f"paths.root_dir={tmp_path}", f"mlflow.tracking_uri={uri}")
    assert code == 75  # EX_TEMPFAIL: start it again when the server is up
    assert err == (
        f"error: mlflow.tracking_uri={uri}: the tracking server cannot be reached (Connection "
        "refused); start it (`fefm-lab server`) or check the URI\n"
    )
    assert time.monotonic() - started < 60  # MLflow's own retries took minutes
