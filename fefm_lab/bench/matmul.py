"""The machine's own float32 matrix-multiply rate, the ceiling the FEFM layer is compared with."""

from __future__ import annotations

import time


def matmul_flops_per_second(size: int = 2048, repeats: int = 10) -> float:
    """Best sustained float32 rate of TensorFlow's `size x size` matmul, in FLOP/s (2 n^3 / time).

    The best of `repeats` timed runs after a warm-up: the ceiling, not a typical figure.
    """
    import tensorflow as tf

    a = tf.random.stateless_normal((size, size), seed=(1, 2), dtype=tf.float32)
    b = tf.random.stateless_normal((size, size), seed=(3, 4), dtype=tf.float32)
    tf.linalg.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best
