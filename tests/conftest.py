"""Shared fixtures: the real-data samples (used only where FEFM_LAB_REAL_DATA points at them) and
the fused FEFM kernel (built here when `make setup` has not)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The shared Criteo/Avazu samples; skips the test when FEFM_LAB_REAL_DATA is unset."""
    value = os.environ.get("FEFM_LAB_REAL_DATA")
    if not value:
        pytest.skip("FEFM_LAB_REAL_DATA is not set (point it at the shared Criteo/Avazu samples)")
    path = Path(value)
    if not (path / "criteo" / "train_10k.txt").is_file():
        pytest.skip(f"FEFM_LAB_REAL_DATA={value} does not hold criteo/train_10k.txt")
    return path


@pytest.fixture(scope="session")
def fefm_kernel():
    """The fused FEFM kernel's op module. `make setup` builds it; a checkout without the library
    builds it here (CI must test the kernel, not skip it), and a build that fails fails the test."""
    from fefm_lab.kernels.build import ensure_built
    from fefm_lab.kernels.fefm_interaction import NAME

    return ensure_built(NAME)
