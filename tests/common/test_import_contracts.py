"""The import contracts (pyproject `[tool.importlinter]`, docs/architecture.md "Layers") hold, and
they catch each kind of break: an upward import, a forbidden one, a cycle through a type-only
import. The breaks are made in a copy of the package, checked with the project's own contracts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"][
    "contracts"
]

pytestmark = pytest.mark.skipif(
    not LINT_IMPORTS.is_file(), reason="import-linter is not installed (make setup installs it)"
)


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the repository's contracts on the package under `root`."""
    environment = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _broken_copy(tmp_path: Path, module: str, added: str) -> Path:
    """A copy of the package (sources only) with `added` appended to `module`'s file."""
    skipped = shutil.ignore_patterns("*.so", "__pycache__")
    shutil.copytree(REPO / "fefm_lab", tmp_path / "fefm_lab", ignore=skipped)
    path = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
    path.write_text(path.read_text() + "\n" + added + "\n")
    return tmp_path


def test_the_package_keeps_every_contract():
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "added", "broken"),
    [
        # tracking must not reach up into the sweep (a function-level import counts); the job,
        # which imports tracking, then reaches the sweep too, and sweep -> tracking closes a cycle
        (
            "fefm_lab.tracking.store",
            "def _up():\n    from fefm_lab.sweep import parent  # noqa",
            ["layers", "tracking", "one-job", "acyclic"],
        ),
        # one job knows no cluster (its sibling in the layers)
        (
            "fefm_lab.runner",
            "from fefm_lab.cluster import shared_data  # noqa",
            ["one-job", "layers"],
        ),
        # a job is handed its typed config: it neither composes nor validates one
        (
            "fefm_lab.runner",
            "from fefm_lab.config.compose import resolve  # noqa",
            ["typed-job"],
        ),
        # config imports no other layer (data imports config: a cycle too)
        (
            "fefm_lab.config.validation",
            "from fefm_lab.data import prepared  # noqa",
            ["config", "layers", "acyclic"],
        ),
        # a cycle closed by a type-only import: data.layout <- data.prepare
        (
            "fefm_lab.data.layout",
            "import typing\nif typing.TYPE_CHECKING:\n    from fefm_lab.data import prepare",
            ["acyclic"],
        ),
    ],
)
def test_a_broken_rule_fails_the_check(tmp_path, module, added, broken):
    result = _lint_imports(_broken_copy(tmp_path, module, added))
    assert result.returncode == 1, result.stdout + result.stderr
    text = " ".join(result.stdout.split())  # the report wraps long contract names
    verdicts = {
        contract["id"]: re.search(re.escape(contract["name"]) + " (KEPT|BROKEN)", text).group(1)
        for contract in CONTRACTS
    }
    assert {key for key, verdict in verdicts.items() if verdict == "BROKEN"} == set(broken)
