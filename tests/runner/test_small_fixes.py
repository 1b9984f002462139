"""Small faults a user met (issue 25, item 7): each names what to change."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fefm_lab import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("uri", "module"),
    [
        ("postgresql+psycopg2://u:pw@127.0.0.1/db", "psycopg2"),
        ("mysql://u:pw@127.0.0.1/db", "MySQLdb"),
    ],
)
def test_missing_driver_hint_does_not_promise_the_cluster_extra(
    tmp_path: Path, capsys, uri: str, module: str
) -> None:
    code = cli.main(
        ["server", f"server.backend_store_uri={uri}", f"server.artifacts_destination={tmp_path}"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        f"error: server.backend_store_uri={uri.replace(':pw@', ':***@')}: the database driver is "
        f"not installed ({module}); install the package that provides the Python module "
        f"'{module}' (fefm-lab's cluster extra brings only psycopg, which SQLAlchemy uses for "
        "postgresql:// and postgresql+psycopg:// URIs)\n"
    )


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_passes_force(tmp_path: Path) -> None:
    """The skip message says `force=true reruns it`: `make run force=true` must pass it on."""
    result = subprocess.run(
        ["make", "-n", "-C", str(REPO), "run", "force=true", f"VENV={tmp_path}/venv"],
        capture_output=True,
        text=True,
        check=True,
    )
    (command,) = [line for line in result.stdout.splitlines() if "fefm-lab run" in line]
    assert command.split()[-2:] == ["run", "force=true"]


def test_help_descriptions_are_whole_sentences(capsys) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    # cut mid-sentence before: "`id` is", "40 columns:", "Combinations the"
    assert (
        "criteo                     Criteo Display Advertising Challenge train.txt (plain or .gz):"
        in out
    )
    assert "C1..C26 (hex hashes, empty = missing)." in out
    section = out.split("Config groups")[1].split("Other keys:")[0]
    docs, current = [], ""
    for line in section.splitlines()[1:]:
        if line.startswith(" " * 32):
            current += " " + line.strip()
        elif line.startswith("   "):
            docs.append(current)
            current = line[32:].strip()
    docs.append(current)
    assert all(len(line) <= 100 for line in section.splitlines())
    cut = [doc for doc in docs if doc and not doc.rstrip().endswith((".", ")"))]
    assert cut == []


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_full_disk_names_paths_checkpoint_dir(tmp_path: Path) -> None:
    """A 64 KiB tmpfs in a mount namespace of the test's own: a real "No space left on device"."""
    disk = tmp_path / "disk"
    disk.mkdir()
    program = (
        "import numpy as np\n"
        "from fefm_lab.training.checkpoint import CheckpointDirectory, Position, TrainingState\n"
        f"directory = CheckpointDirectory('{disk}', 'abc')\n"
        "state = TrainingState(Position(), [np.zeros(100_000)], [], None, ['w'])\n"
        "try:\n"
        "    directory.save(state)\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
        "import os; print(sorted(os.listdir(directory.directory)))\n"
    )
    script = f'mount -t tmpfs -o size=64k tmpfs {disk} && exec {sys.executable} -c "$0"'
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, program],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode == 32 or "mount:" in result.stderr:
        pytest.skip(f"no tmpfs mount here: {result.stderr.strip()}")
    assert result.stdout.splitlines() == [
        f"CheckpointNotWritable paths.checkpoint_dir={disk}: cannot write "
        f"{disk}/abc/checkpoint.npz: No space left on device; free space there or set "
        "paths.checkpoint_dir to another directory (the previous checkpoint, if any, is kept)",
        "[]",  # no partial file left behind
    ], result.stderr
