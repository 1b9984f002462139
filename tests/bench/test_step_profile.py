"""The `profile` part: the roofline arithmetic, and one profile at a tiny shape."""

from __future__ import annotations

import os

from fefm_lab import kernels
from scripts.bench.step_profile import bound_target, forward_flops, kernels_off, profile


def test_forward_flops_counts_fefm_and_dnn_matmuls() -> None:
    # FEFM: 2 * 1024 * 741 * 16^2; DNN: (39*16 + 741) -> 256 -> 128 -> 64 -> 1
    dnn = 1365 * 256 + 256 * 128 + 128 * 64 + 64
    expected = 2.0 * 1024 * (741 * 256 + dnn)
    assert forward_flops(16, (256, 128, 64)) == expected
    # 4 fields: P = 6; widths 4*2 + 6 = 14 -> 3 -> 1
    assert forward_flops(2, (3,), fields=4, batch=8) == 2.0 * 8 * (6 * 4 + 14 * 3 + 3)


def test_profile_times_each_part_of_a_step() -> None:
    times = profile(2, (4,), fields=4, batch=32, repeats=2)
    assert set(times) == {"forward", "gradients", "step", "optimizer", "optimizer_ops"}
    assert all(value > 0 for value in times.values())


def test_kernels_off_sets_the_switch_only_inside_the_block(monkeypatch) -> None:
    monkeypatch.delenv(kernels.SWITCH_VARIABLE, raising=False)
    with kernels_off():
        assert os.environ[kernels.SWITCH_VARIABLE] == "0" and not kernels.kernels_enabled()
    assert kernels.SWITCH_VARIABLE not in os.environ
    monkeypatch.setenv(kernels.SWITCH_VARIABLE, "yes")
    with kernels_off():
        assert not kernels.kernels_enabled()
    assert os.environ[kernels.SWITCH_VARIABLE] == "yes"


def test_bound_target_is_met_within_one_and_a_half_times_the_bound() -> None:
    missed = bound_target(16, (256, 128, 64), step_ms=70.0, bound_ms=17.5)
    assert missed.name == "training step within 1.5x of the matmul bound, k=16, DNN 256x128x64"
    assert missed.measured == 25.0 and not missed.met
    assert missed.note == "step 70.0 ms, bound 17.5 ms"
    assert bound_target(48, (1024,) * 3, step_ms=150.0, bound_ms=100.0).met  # exactly 1.5x
    assert not bound_target(48, (1024,) * 3, step_ms=151.0, bound_ms=100.0).met


def test_profile_part_times_both_paths_shipped_first(fefm_kernel, monkeypatch) -> None:
    """With the kernels built (`make setup`), each shape has a row on the C++ kernels and one on
    the TensorFlow ops (FEFM_LAB_KERNELS=0), the speed-up on the first; the target reads it."""
    import argparse

    from fefm_lab import kernels
    from scripts.bench.step_profile import run

    monkeypatch.delenv(kernels.SWITCH_VARIABLE, raising=False)
    result = run(argparse.Namespace(smoke=True, profile_repeats=2))
    section, ops = result.sections
    assert section.headers[2] == "path" and section.headers[-1] == "speed-up"
    (kernel_row, ops_row) = section.rows
    assert (kernel_row[2], ops_row[2]) == ("C++ kernels", "TensorFlow ops")
    step = section.headers.index("step (ms)")
    speedup = float(kernel_row[-1].rstrip("x"))
    assert abs(speedup - ops_row[step] / kernel_row[step]) < 0.006 and ops_row[-1] == ""
    (target,) = result.targets
    bound = kernel_row[section.headers.index("matmul bound (ms)")]
    assert target.note == f"step {kernel_row[step]:.1f} ms, bound {bound:.1f} ms"
    assert "fused C++ kernel" in section.text
    # the shipped step op by op: the fused kernel's two ops carry the FEFM rows
    assert ops.headers == ["op group", "k=4, 8 (ms)"]
    by_group = {row[0]: row[1] for row in ops.rows}
    assert by_group["FEFM interactions, forward"] > 0
    assert by_group["FEFM interactions, backward"] > 0
    assert by_group["sum of op time"] == sum(ops.data["columns"]["k=4, 8"]["groups"].values())
