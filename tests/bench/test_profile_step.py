"""`scripts/profile_step.py`: the roofline arithmetic, and one profile at a tiny shape."""

from __future__ import annotations


def test_forward_flops_counts_fefm_and_dnn_matmuls(load_script) -> None:
    profile_step = load_script("profile_step")
    # FEFM: 2 * 1024 * 741 * 16^2; DNN: (39*16 + 741) -> 256 -> 128 -> 64 -> 1
    dnn = 1365 * 256 + 256 * 128 + 128 * 64 + 64
    expected = 2.0 * 1024 * (741 * 256 + dnn)
    assert profile_step.forward_flops(16, (256, 128, 64)) == expected


def test_profile_times_each_part_of_a_step(load_script) -> None:
    times = load_script("profile_step").profile(2, (4,))
    assert set(times) == {"forward", "gradients", "step"}
    assert all(value > 0 for value in times.values())
