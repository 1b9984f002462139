"""Fixtures for the model tests: the fused FEFM kernel, built when missing, and the two paths."""

from __future__ import annotations

import pytest

from fefm_lab import kernels
from fefm_lab.kernels import build
from fefm_lab.kernels.fefm_interaction import NAME


@pytest.fixture(scope="session")
def fefm_kernel():
    """The kernel's op module. `make setup` builds it; a checkout without the library builds
    it here (CI must test the kernel, not skip it), and a build that fails fails the test."""
    if kernels.stale_reason(NAME) is not None:
        cxx = build.compiler()
        assert cxx is not None, "no C++ compiler to build the FEFM kernel"
        build.build(NAME, cxx)
        kernels._load.cache_clear()
    module = kernels._load(NAME)[0]
    assert module is not None, kernels.status(NAME)
    return module


@pytest.fixture(params=["kernel", "tensorflow_ops"])
def fefm_path(request, monkeypatch) -> str:
    """Runs a test on the fused kernel and on the TensorFlow-ops path (FEFM_LAB_KERNELS=0)."""
    if request.param == "kernel":
        request.getfixturevalue("fefm_kernel")
        monkeypatch.setenv(kernels.DISABLE_VARIABLE, "1")
    else:
        monkeypatch.setenv(kernels.DISABLE_VARIABLE, "0")
    return request.param
