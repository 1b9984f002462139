"""Fixtures of the data-path tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data_root"
    root.mkdir()
    return root
