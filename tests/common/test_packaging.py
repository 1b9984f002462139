"""The wheel ships every package of the source tree (a forgotten one breaks only non-editable
installs, which the test suite's editable install never sees)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _packages_on_disk() -> set[str]:
    found = {"fefm_lab.conf"}  # conf/ ships as fefm_lab.conf (package-dir mapping)
    for top in ("fefm_lab", "hydra_plugins"):
        for init in (ROOT / top).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                found.add(".".join(init.parent.relative_to(ROOT).parts))
    return found


def test_pyproject_lists_every_package() -> None:
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(settings["packages"]) == _packages_on_disk()
    assert settings["package-dir"]["fefm_lab.conf"] == "conf"
