"""Time the FEFM layer's formulations (forward + backward) against a plain matmul.

Usage: .venv/bin/python scripts/bench_fefm_layer_variants.py [--fields 39] [--batch 1024]

Useful work of one forward + backward pass: 3 contractions of 2 B P k^2 flops each (forward,
gradient to the embeddings, gradient to the matrices). GFLOP/s below count only that work; the
reference rate is `tf.matmul` of an (4096 x 1024) by (1024 x 1024) product in the same process.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from fefm_lab.layers import FEFM_IMPLEMENTATIONS, FEFMInteraction


def best_seconds(fn, repeats: int) -> float:
    fn()  # trace / compile
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_rate(repeats: int) -> float:
    a = tf.random.normal((4096, 1024))
    b = tf.random.normal((1024, 1024))
    step = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    seconds = best_seconds(lambda: step().numpy(), repeats)
    return 2 * 4096 * 1024 * 1024 / seconds / 1e9


def fefm_step_seconds(
    implementation: str, fields: int, dim: int, batch: int, jit: bool, repeats: int
) -> float:
    layer = FEFMInteraction(implementation=implementation, seed=1)
    x = tf.Variable(tf.random.normal((batch, fields, dim), stddev=0.1))
    layer.build(x.shape)

    @tf.function(jit_compile=jit)
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x))
        grads = tape.gradient(loss, [x, layer.field_matrices.value])
        return loss + sum(tf.reduce_sum(g) for g in grads)

    return best_seconds(lambda: step().numpy(), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fields", type=int, default=39)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--dims", type=int, nargs="+", default=[16, 48])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"threads: intra={tf.config.threading.get_intra_op_parallelism_threads()}")
    rate = matmul_rate(args.repeats)
    print(f"tf.matmul 4096x1024x1024 float32: {rate:.1f} GFLOP/s")
    pairs = args.fields * (args.fields - 1) // 2
    for dim in args.dims:
        flops = 3 * 2 * args.batch * pairs * dim * dim
        for implementation in FEFM_IMPLEMENTATIONS:
            for jit in (False, True):
                seconds = fefm_step_seconds(
                    implementation, args.fields, dim, args.batch, jit, args.repeats
                )
                gflops = flops / seconds / 1e9
                print(
                    f"n={args.fields} P={pairs} k={dim} B={args.batch} {implementation:>13} "
                    f"jit={jit!s:5}: {seconds * 1e3:8.1f} ms fwd+bwd, {gflops:6.1f} GFLOP/s "
                    f"({100 * gflops / rate:.0f}% of matmul)"
                )


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
