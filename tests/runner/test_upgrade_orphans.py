"""SIGKILL, then an upgrade that changes the code version, then the same command: the old run is
reaped (its liveness does not depend on the code version) and its checkpoint is listed as stale."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fefm_lab
from fefm_lab import cli
from fefm_lab.tracking.store import open_store

ARGS = ("debug=tiny", "dataset.synthetic.rows=3000", "trainer.max_epochs=30")


def _old_version(root: Path) -> Path:
    """A copy of the package whose maths modules differ by one statement: another code version."""
    package = Path(fefm_lab.__file__).resolve().parent
    copy = root / "old" / "fefm_lab"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    if not (copy / "conf").is_dir():
        shutil.copytree(package.parent / "conf", copy.parent / "conf")
    with (copy / "training" / "metrics.py").open("a") as module:
        module.write("\nOLD_RELEASE = True\n")
    return copy.parent


@pytest.mark.slow
def test_run_killed_before_an_upgrade_is_reaped_after_it(tmp_path: Path, capsys) -> None:
    arguments = [*ARGS, f"paths.root_dir={tmp_path}", "mlflow.experiment=upgrade"]
    old = subprocess.Popen(
        [sys.executable, "-m", "fefm_lab.cli", "run", *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(_old_version(tmp_path)), "TF_CPP_MIN_LOG_LEVEL": "2"},
        cwd=tmp_path,  # `-m` puts the working directory first on sys.path: not the checkout
    )
    try:
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob("**/checkpoint.npz")):
            assert old.poll() is None, "the old version's run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.1)
    finally:
        old.send_signal(signal.SIGKILL)
        old.wait()
    (checkpoint,) = tmp_path.glob("**/checkpoint.npz")
    store = open_store(f"sqlite:///{tmp_path}/mlflow.db", "upgrade")
    (orphan,) = store.search("attributes.status = 'RUNNING'")
    assert orphan.data.tags["pid"] == str(old.pid)
    capsys.readouterr()

    assert cli.main(["run", *arguments]) == 0
    err = capsys.readouterr().err
    runs = {run.info.run_id: run for run in store.search()}
    reaped = runs.pop(orphan.info.run_id)
    (new,) = runs.values()
    assert (reaped.info.status, new.info.status) == ("KILLED", "FINISHED")
    assert reaped.data.tags["reason"].startswith(f"reaped: process {old.pid} on host ")
    assert reaped.data.tags["code_version"] != new.data.tags["code_version"]
    assert f"run {orphan.info.run_id} of this configuration marked KILLED" in err
    size = checkpoint.stat().st_size / 2**30
    assert (
        f"1 stale checkpoint(s), {size:.2f} GiB, under {checkpoint.parent.parent}: "
        f"{checkpoint.parent.name} (their runs are gone or of another code version" in err
    )
