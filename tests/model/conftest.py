"""Fixtures for the model tests: the two FEFM paths."""

from __future__ import annotations

import pytest

from fefm_lab import kernels


@pytest.fixture(params=["kernel", "tensorflow_ops"])
def fefm_path(request, monkeypatch) -> str:
    """Runs a test on the fused kernel and on the TensorFlow-ops path (FEFM_LAB_KERNELS=0)."""
    if request.param == "kernel":
        request.getfixturevalue("fefm_kernel")
        monkeypatch.setenv(kernels.SWITCH_VARIABLE, "1")
    else:
        monkeypatch.setenv(kernels.SWITCH_VARIABLE, "0")
    return request.param
