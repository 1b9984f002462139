"""The fused FEFM kernel (fefm_lab/kernels/fefm_interaction.cc): its ops against the float64
pair-by-pair reference, its errors, and the loader's and the build's ways of falling back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from float64_reference import fefm_gradients_reference, fefm_reference

from fefm_lab import kernels
from fefm_lab.kernels import build
from fefm_lab.kernels.fefm_interaction import (
    NAME,
    describe_path,
    instruction_set,
    kernel_instruction_set,
)
from fefm_lab.layers import pair_indices

ISAS = ("avx512f", "avx2", "baseline")
# (B, n, k): k below, at and past the 16 floats of one 64-byte vector, not multiples of it;
# B past 128 (the most rows a block takes) and not a multiple of a block or a tile; n = 2.
SHAPES = [(1, 2, 1), (7, 2, 16), (5, 3, 4), (33, 5, 17), (130, 3, 8), (70, 6, 48), (19, 4, 33)]


def run_ops(module, v, w, upstream, isa="auto"):
    """Scores and (d_v, d_w) of sum(upstream * scores) from the kernel's two ops."""
    left, right = (list(map(int, x)) for x in pair_indices(v.shape[1]))
    attrs = {"left": left, "right": right, "isa": isa}
    scores = module.fefm_scores(v, w, **attrs)
    d_v, d_w = module.fefm_scores_grad(upstream, v, w, **attrs)
    return scores.numpy(), d_v.numpy(), d_w.numpy()


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-300))


def require_isa(module, isa: str) -> None:
    """Skips the test where this CPU lacks `isa` (the other variants are tested here)."""
    try:
        run_ops(module, *(tf.ones(s) for s in [(1, 2, 1), (1, 1, 1), (1, 1)]), isa=isa)
    except tf.errors.InvalidArgumentError as error:
        assert "not built or not supported by this CPU" in error.message
        pytest.skip(f"this CPU does not run {isa}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize(("batch", "n", "k"), SHAPES)
def test_ops_match_float64_reference(fefm_kernel, isa, dtype, symmetric, batch, n, k):
    """Scores, d_v and d_W of every instruction-set variant against the pair-by-pair loop;
    W = U + U^T (symmetric) or U, as the layer passes it."""
    require_isa(fefm_kernel, isa)
    rng = np.random.default_rng(1000 * batch + 10 * n + k)
    v = rng.normal(size=(batch, n, k))
    u = rng.normal(size=(n * (n - 1) // 2, k, k))
    w = u + u.transpose(0, 2, 1) if symmetric else u
    upstream = rng.normal(size=(batch, n * (n - 1) // 2))
    scores, d_v, d_w = run_ops(
        fefm_kernel, *(tf.constant(x, dtype) for x in (v, w, upstream)), isa=isa
    )
    want_v, want_w = fefm_gradients_reference(v, w, upstream, symmetric=False)
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    assert scores.dtype == d_v.dtype == d_w.dtype == np.dtype(dtype)
    assert relative_error(scores, fefm_reference(v, w, symmetric=False)) < tolerance
    assert relative_error(d_v, want_v) < tolerance
    assert relative_error(d_w, want_w) < tolerance


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("k", [8, 16, 48])
def test_a_rows_scores_and_d_v_do_not_depend_on_its_tile(fefm_kernel, isa, k):
    """Rows are summed a tile at a time (their lanes' trees of halves together); each row's
    scores and d_v are bit for bit those of the row alone in a batch of one."""
    require_isa(fefm_kernel, isa)
    rng = np.random.default_rng(k)
    v = tf.constant(rng.normal(size=(19, 4, k)), "float32")
    u = rng.normal(size=(6, k, k))
    w = tf.constant(u + u.transpose(0, 2, 1), "float32")
    upstream = tf.constant(rng.normal(size=(19, 6)), "float32")
    scores, d_v, _ = run_ops(fefm_kernel, v, w, upstream, isa)
    for row in (0, 7, 18):
        alone = run_ops(fefm_kernel, v[row : row + 1], w, upstream[row : row + 1], isa)
        np.testing.assert_array_equal(alone[0][0], scores[row])
        np.testing.assert_array_equal(alone[1][0], d_v[row])


def test_ops_hand_worked_numbers(fefm_kernel):
    """n = 3, k = 2, W_p = [[1, 2], [0, 1]] for every pair; v = (1, 2), (3, 4), (0, 1).
    r_01 = (1, 2) W (3, 4)^T = (1, 4) . (3, 4) = 19; r_02 = (1, 4) . (0, 1) = 4;
    r_12 = (3, 10) . (0, 1) = 10. With g = 1: dW_01 = v_0 v_1^T = [[3, 4], [6, 8]];
    d_v0 = W v_1 + W v_2 = (11, 4) + (2, 1) = (13, 5)."""
    v = tf.constant([[[1, 2], [3, 4], [0, 1]]], "float32")
    w = tf.constant([[[1, 2], [0, 1]]] * 3, "float32")
    scores, d_v, d_w = run_ops(fefm_kernel, v, w, tf.ones((1, 3)))
    np.testing.assert_array_equal(scores, [[19, 4, 10]])
    np.testing.assert_array_equal(d_w[0], [[3, 4], [6, 8]])
    np.testing.assert_array_equal(d_v[0, 0], [13, 5])


def test_empty_batch_gives_empty_scores_and_zero_gradients(fefm_kernel):
    scores, d_v, d_w = run_ops(
        fefm_kernel, tf.zeros((0, 3, 4)), tf.ones((3, 4, 4)), tf.zeros((0, 3))
    )
    assert scores.shape == (0, 3) and d_v.shape == (0, 3, 4)
    np.testing.assert_array_equal(d_w, np.zeros((3, 4, 4)))


@pytest.mark.parametrize(
    ("v_shape", "w_shape", "left", "right", "message"),
    [
        ((2, 3, 4), (3, 4, 4), [0, 0, 2], [1, 2, 1], r"pair 2 must satisfy 0 <= left < right"),
        ((2, 3, 4), (2, 4, 4), [0, 0, 1], [1, 2, 2], r"w has 2 pair matrices for 3 pairs"),
        ((2, 3, 4), (3, 4, 5), [0, 0, 1], [1, 2, 2], r"w must be \(pairs, k, k\) with k = 4"),
        ((2, 3, 4), (3, 4, 4), [0, 0, 1], [1, 2, 3], r"pair 2 names field 3 of 3"),
        ((2, 3, 4), (2, 4, 4), [0, 0], [1], r"left and right must list the same number"),
    ],
)
def test_ops_refuse_inconsistent_shapes_and_pairs(
    fefm_kernel, v_shape, w_shape, left, right, message
):
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=message):
        fefm_kernel.fefm_scores(tf.ones(v_shape), tf.ones(w_shape), left=left, right=right)


def test_unknown_instruction_set_is_refused(fefm_kernel):
    with pytest.raises(tf.errors.InvalidArgumentError, match="isa 'sse9' is not built"):
        run_ops(fefm_kernel, tf.ones((1, 2, 1)), tf.ones((1, 1, 1)), tf.ones((1, 1)), "sse9")


def test_run_log_line_names_the_path(fefm_kernel, monkeypatch):
    monkeypatch.setenv(kernels.SWITCH_VARIABLE, "1")
    isa = instruction_set()
    assert isa in ISAS
    assert describe_path(jit_compile=False).startswith(
        f"FEFM interactions: fused C++ kernel, {isa}"
    )
    assert "has no XLA version" in describe_path(jit_compile=True)
    assert "on a GPU: the fused kernel is CPU-only" in describe_path(False, on_gpu=True)
    monkeypatch.setenv(kernels.SWITCH_VARIABLE, "0")
    assert describe_path(jit_compile=False) == (
        "FEFM interactions: TensorFlow ops (kernel fefm_interaction: off (FEFM_LAB_KERNELS=0))"
    )


def test_the_run_tag_names_the_instruction_set(fefm_kernel, monkeypatch):
    isa = instruction_set()
    assert isa in ISAS
    assert kernel_instruction_set(jit_compile=False) == isa
    assert kernel_instruction_set(jit_compile=True) is None  # XLA: TensorFlow ops
    assert kernel_instruction_set(jit_compile=False, on_gpu=True) is None
    assert kernels.run_instruction_set(isa, optimizer_kernel=True) == isa
    assert kernels.run_instruction_set(None, optimizer_kernel=True) == "baseline"  # e.g. lr
    assert kernels.run_instruction_set(None, optimizer_kernel=False) == "none"
    monkeypatch.setenv(kernels.SWITCH_VARIABLE, "0")
    assert kernel_instruction_set(jit_compile=False) is None


# ---- the loader's and the build's fallbacks, on a copy of the kernel folder ----


@pytest.fixture
def kernel_folder(tmp_path, monkeypatch):
    """A temporary kernel folder, holding only this kernel's source, that the loader and the
    build use."""
    shutil.copy(kernels.source_path(NAME), tmp_path)
    monkeypatch.setattr(kernels, "KERNEL_DIR", tmp_path)
    monkeypatch.setenv(kernels.SWITCH_VARIABLE, "1")
    kernels._load.cache_clear()
    yield tmp_path
    kernels._load.cache_clear()


def stamp(name: str, **changes) -> None:
    record = {"source_sha256": kernels.source_digest(name), "tensorflow": tf.__version__}
    kernels.stamp_path(name).write_text(json.dumps({**record, **changes}))


def test_loader_falls_back_with_its_reason(kernel_folder, fefm_kernel):
    library = kernels.library_path(NAME)
    assert kernels.load(NAME) is None
    assert kernels.status(NAME) == (
        f"kernel {NAME}: not used (_{NAME}.so is not built (run `make setup`))"
    )
    library.write_bytes(b"not a shared library")
    stamp(NAME, source_sha256="0" * 64)
    kernels._load.cache_clear()
    assert kernels.load(NAME) is None
    assert f"_{NAME}.so was built from another {NAME}.cc" in kernels.status(NAME)
    stamp(NAME, tensorflow="2.0.0")
    kernels._load.cache_clear()
    assert f"was built for TensorFlow 2.0.0, this is {tf.__version__}" in kernels.status(NAME)
    stamp(NAME)
    kernels._load.cache_clear()
    assert kernels.load(NAME) is None
    assert f"_{NAME}.so failed to load" in kernels.status(NAME)


def test_switch_turns_the_kernel_off(fefm_kernel, monkeypatch):
    monkeypatch.setenv(kernels.SWITCH_VARIABLE, "off")
    assert kernels.load(NAME) is None
    assert kernels.status(NAME) == f"kernel {NAME}: off (FEFM_LAB_KERNELS=off)"
    monkeypatch.setenv(kernels.SWITCH_VARIABLE, "1")
    assert kernels.load(NAME) is fefm_kernel


def test_a_failed_build_stops_setup_naming_the_kernel_and_tensorflow(
    kernel_folder, monkeypatch, capsys
):
    monkeypatch.setenv("CXX", "false")
    assert build.main([]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"error: kernel {NAME} does not build against TensorFlow {tf.__version__}; the "
        "compiler's errors:",
        f"  {shutil.which('false')} exited 1",
    ]
    assert not kernels.library_path(NAME).exists() and not kernels.stamp_path(NAME).exists()
    assert list(kernel_folder.glob("*.tmp")) == []
    assert kernels.load(NAME) is None


def test_a_library_stale_for_tensorflow_that_does_not_rebuild_stops_setup(
    kernel_folder, monkeypatch, capsys
):
    """Not a quiet fallback: the library built for another TensorFlow stays unused and the build
    (`make setup`) exits 1, saying which kernel and which TensorFlow versions."""
    old = kernels.library_path(NAME)
    old.write_bytes(b"old library")
    stamp(NAME, tensorflow="2.20.0")
    monkeypatch.setenv("CXX", "false")
    assert build.main([]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        f"error: kernel {NAME} does not build against TensorFlow {tf.__version__} (its library "
        "was built for TensorFlow 2.20.0); the compiler's errors:"
    )
    assert old.read_bytes() == b"old library"
    assert kernels.load(NAME) is None


def test_without_any_compiler_the_ops_path_is_kept_and_said(kernel_folder, monkeypatch, capsys):
    monkeypatch.setenv("CXX", "no-such-compiler-fefm-lab")
    assert build.compiler() is None
    assert build.main([]) == 0
    assert capsys.readouterr().out == (
        f"kernel {NAME}: no C++ compiler (g++, or set CXX) to build it against TensorFlow "
        f"{tf.__version__}: the TensorFlow-ops path runs instead (same maths, slower)\n"
    )
    assert build.main(["--strict"]) == 1
    assert kernels.load(NAME) is None


REBUILD_SCRIPT = """
import json, sys
from pathlib import Path
from fefm_lab import kernels
from fefm_lab.kernels import build
kernels.KERNEL_DIR = Path(sys.argv[1])
rebuilt = build.main([])
kernels._load.cache_clear()
loaded = kernels.load(sys.argv[2]) is not None
print(json.dumps({"rebuilt": rebuilt, "loaded": loaded, "again": build.main([])}))
"""


@pytest.mark.slow
def test_a_library_that_does_not_load_is_rebuilt(kernel_folder):
    """Up to date by its stamp but not loadable (say, built against another TensorFlow ABI):
    the build rebuilds it and loads it. In a fresh process: a second copy of the library loaded
    in this one would register its op kernels twice, and every later FefmScores call would fail."""
    kernels.library_path(NAME).write_bytes(b"not a shared library")
    stamp(NAME)
    done = subprocess.run(
        [sys.executable, "-c", REBUILD_SCRIPT, str(kernel_folder), NAME],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, kernels.SWITCH_VARIABLE: "1"},
    )
    lines = done.stdout.strip().splitlines()
    built, up_to_date = (
        f"kernel {NAME}: built _{NAME}.so",
        f"kernel {NAME}: up to date (_{NAME}.so)",
    )
    assert lines[:2] == [built, up_to_date]
    assert json.loads(lines[-1]) == {"rebuilt": 0, "loaded": True, "again": 0}


def test_build_of_broken_source_keeps_the_old_library_untrusted(kernel_folder, capsys):
    """A library built from earlier source stays where it was, but its stamp no longer matches
    the (now broken) source, so nothing loads it; the build exits 1."""
    old = kernels.library_path(NAME)
    old.write_bytes(b"old library")
    stamp(NAME)
    kernels.source_path(NAME).write_text("this is not C++;\n")
    assert build.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: kernel {NAME} does not build against TensorFlow {tf.__version__}; the "
        "compiler's errors:\n"
    )
    assert "error" in err.splitlines()[1]
    assert old.read_bytes() == b"old library"
    assert list(kernel_folder.glob("*.tmp")) == []
    assert kernels.load(NAME) is None
    assert f"was built from another {NAME}.cc" in kernels.status(NAME)


BASELINE_ONLY_CHECK = """
import json, sys
import numpy as np
import tensorflow as tf
m = tf.load_op_library(sys.argv[1])
v = np.arange(24, dtype="float32").reshape(2, 3, 4) / 10
w = np.arange(48, dtype="float32").reshape(3, 4, 4) / 10
scores = m.fefm_scores(v, w, left=[0, 0, 1], right=[1, 2, 2]).numpy()
try:
    m.fefm_scores(v, w, left=[0, 0, 1], right=[1, 2, 2], isa="avx2")
    refused = ""
except tf.errors.InvalidArgumentError as error:
    refused = error.message
print(json.dumps({"isa": m.fefm_instruction_set().numpy().decode(), "scores": scores.tolist(),
                  "refused": refused}))
"""


@pytest.mark.slow
def test_build_without_the_x86_variants_still_works(tmp_path):
    """What a machine other than x86-64 compiles (only the baseline variant; -DFEFM_BASELINE_ONLY
    gives the same on x86-64) builds, loads in a fresh process, names the baseline, refuses avx2,
    and matches the float64 reference."""
    import subprocess
    import sys

    cxx = build.compiler()
    assert cxx is not None, "no C++ compiler"
    library = tmp_path / "_baseline.so"
    command = build.compile_command(NAME, cxx, str(library), ["-DFEFM_BASELINE_ONLY"])
    compiled = subprocess.run(command, capture_output=True, text=True, check=False)
    assert compiled.returncode == 0, build.compiler_errors(compiled.stderr)
    checked = subprocess.run(
        [sys.executable, "-c", BASELINE_ONLY_CHECK, str(library)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stderr[-3000:]
    result = json.loads(checked.stdout.strip().splitlines()[-1])
    assert result["isa"] == "baseline"
    assert "isa 'avx2' is not built or not supported by this CPU" in result["refused"]
    v = np.arange(24).reshape(2, 3, 4) / 10
    w = np.arange(48).reshape(3, 4, 4) / 10
    assert relative_error(np.array(result["scores"]), fefm_reference(v, w, False)) < 1e-6
