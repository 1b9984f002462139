"""Part `layer`: the FEFM layer's forward and backward throughput against the machine's matmul rate.

Useful work counted (per batch of B rows, P pairs, k-dim embeddings): the forward contraction
r = v_i^T W_p v_j costs 2 B P k^2 flops (the k x k matrix-vector product; the final dot adds
2 B P k, left out); the backward pass does two more of the same size (gradient to the embeddings,
gradient to the field matrices), so forward + backward = 3 x 2 B P k^2.

The layer runs the way the trainer runs it: inside a `tf.function`, XLA-compiled only if the
trainer's `jit_compile` default says so (off: XLA was slower for FEFM on this CPU). It is timed
on both paths, their calls taken in turn: the fused C++ kernel (what ships where `make setup`
built it) and the TensorFlow ops (`FEFM_LAB_KERNELS=0`); the target reads the shipped one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator

from scripts.bench.machine import matmul_flops_per_second
from scripts.bench.measure import interleaved_median_seconds
from scripts.bench.report import Part, PartResult, Section, Target, format_number, int_list

SHARE_OF_MATMUL_GOAL = 30.0  # %: forward + backward at the largest k


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layer-ks", type=int_list, default=[16, 48], help="embedding sizes")
    parser.add_argument("--layer-fields", type=int, default=39, help="fields (Criteo: 39)")
    parser.add_argument("--layer-batch", type=int, default=1024)
    parser.add_argument("--layer-repeats", type=int, default=10, help="timed calls (median)")


def trainer_jit_compile() -> bool:
    """Whether the trainer XLA-compiles its forward and backward pass by default."""
    from fefm_lab.training import TrainerConfig

    return TrainerConfig().jit_compile


@contextlib.contextmanager
def kernels_switched(on: bool) -> Iterator[None]:
    """FEFM_LAB_KERNELS for the block: graphs traced inside it take the compiled kernels (on) or
    the TensorFlow ops (off)."""
    from fefm_lab.kernels import SWITCH_VARIABLE

    before = os.environ.get(SWITCH_VARIABLE)
    os.environ[SWITCH_VARIABLE] = "1" if on else "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ[SWITCH_VARIABLE]
        else:
            os.environ[SWITCH_VARIABLE] = before


def shipped_fefm_path() -> tuple[bool, str]:
    """Whether the trainer's FEFM layer takes the fused kernel here, and the run log's line."""
    from fefm_lab.kernels.fefm_interaction import describe_path, ops_module

    jit_compile = trainer_jit_compile()
    return ops_module() is not None and not jit_compile, describe_path(jit_compile)


def fefm_layer_calls(fields: int, k: int, batch: int) -> dict[str, Callable[[], object]]:
    """The layer's forward pass and forward + backward, compiled as the trainer compiles its
    step and traced now (FEFM_LAB_KERNELS as set at this moment decides the path)."""
    import tensorflow as tf

    from fefm_lab.layers import FEFMInteraction

    jit_compile = trainer_jit_compile()

    layer = FEFMInteraction(seed=0)
    embeddings = tf.random.stateless_normal((batch, fields, k), seed=(5, 6))
    layer.build(embeddings.shape)
    weights = layer.trainable_variables

    @tf.function(jit_compile=jit_compile)
    def forward(x):
        return layer(x)

    @tf.function(jit_compile=jit_compile)
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x))
        grad_x, *grad_w = tape.gradient(loss, [x, *weights])
        return grad_x, grad_w

    def run_forward():
        forward(embeddings).numpy()

    def run_forward_backward():
        grad_x, grad_w = forward_backward(embeddings)
        grad_x.numpy()
        grad_w[0].numpy()

    run_forward(), run_forward_backward()  # traced here, under the current switch
    return {"forward": run_forward, "forward_backward": run_forward_backward}


def time_fefm_layer_paths(
    fields: int, k: int, batch: int, repeats: int, paths: dict[str, bool]
) -> dict[str, dict[str, float]]:
    """Median seconds of the layer's forward pass and forward + backward for each path (label:
    kernel on or off), the calls of all paths taken in turn (`interleaved_median_seconds`), so a
    change in the machine's load falls on each alike."""
    calls = {}
    for label, kernel in paths.items():
        with kernels_switched(kernel):
            for name, call in fefm_layer_calls(fields, k, batch).items():
                calls[f"{label}/{name}"] = call
    medians = interleaved_median_seconds(calls, repeats=repeats, warmup=1)
    return {
        label: {
            f"{name}_seconds": medians[f"{label}/{name}"]
            for name in ("forward", "forward_backward")
        }
        for label in paths
    }


def run(args: argparse.Namespace) -> PartResult:
    ks, fields, batch = args.layer_ks, args.layer_fields, args.layer_batch
    repeats, matmul_size = args.layer_repeats, 2048
    if args.smoke:
        ks, fields, batch, repeats, matmul_size = [4, 8], 6, 64, 2, 256
    matmul_flops = matmul_flops_per_second(matmul_size)
    print(f"matmul rate {matmul_flops / 1e9:.0f} GFLOP/s", flush=True)
    fused_ships, path_line = shipped_fefm_path()
    paths = {"fused C++ kernel": True, "TensorFlow ops": False} if fused_ships else {}
    paths = paths or {"TensorFlow ops": False}
    pairs = fields * (fields - 1) // 2
    rows, targets, data = [], [], []
    for k in ks:
        forward_flops = 2.0 * batch * pairs * k * k
        shipped_rate, seconds = 0.0, {}
        for label, times in time_fefm_layer_paths(fields, k, batch, repeats, paths).items():
            seconds[label] = times["forward_backward_seconds"]
            forward_rate = forward_flops / times["forward_seconds"]
            both_rate = 3 * forward_flops / times["forward_backward_seconds"]
            shipped_rate = shipped_rate or both_rate  # the first path is the shipped one
            data.append(
                {
                    "k": k,
                    "path": label,
                    **times,
                    "forward_flops_per_second": forward_rate,
                    "forward_backward_flops_per_second": both_rate,
                    "forward_backward_fraction_of_matmul": both_rate / matmul_flops,
                }
            )
            rows.append(
                [
                    k,
                    label,
                    times["forward_seconds"] * 1e3,
                    times["forward_backward_seconds"] * 1e3,
                    forward_rate / 1e9,
                    both_rate / 1e9,
                    f"{100 * forward_rate / matmul_flops:.0f}%",
                    f"{100 * both_rate / matmul_flops:.0f}%",
                    "",
                ]
            )
        if len(seconds) == 2:
            speedup = seconds["TensorFlow ops"] / seconds["fused C++ kernel"]
            rows[-2][-1] = f"{speedup:.2f}x"
            data[-2]["speedup_over_tensorflow_ops"] = speedup
        if k == max(ks):
            targets.append(
                Target(
                    f"FEFM layer forward+backward at k={k}, share of matmul rate",
                    100 * shipped_rate / matmul_flops,
                    SHARE_OF_MATMUL_GOAL,
                    unit="%",
                    note=f"{format_number(shipped_rate / 1e9)} of "
                    f"{format_number(matmul_flops / 1e9)} GFLOP/s",
                )
            )
    section = Section(
        f"FEFM layer versus the machine (P = {pairs}, batch {batch})",
        text=(
            f"Float32 matmul rate measured in the same run: {matmul_flops / 1e9:.0f} GFLOP/s "
            f"(best of {matmul_size} x {matmul_size} products). Useful work: forward 2·B·P·k² "
            f"flops, forward + backward 3 x that; median of {repeats} calls in a tf.function "
            f"as the trainer runs them (XLA {'on' if trainer_jit_compile() else 'off'}). "
            f"What ships here: {path_line}. The TensorFlow-ops rows are the same layer with "
            "FEFM_LAB_KERNELS=0, its calls and the kernel's taken in turn; 'speed-up' is its "
            "fwd+bwd time over the kernel's. The target reads the first row of each k (what "
            "ships)."
        ),
        headers=[
            "k",
            "FEFM path",
            "forward (ms)",
            "fwd+bwd (ms)",
            "forward GFLOP/s",
            "fwd+bwd GFLOP/s",
            "forward % of matmul",
            "fwd+bwd % of matmul",
            "speed-up",
        ],
        rows=rows,
        data={"matmul_flops_per_second": matmul_flops, "shipped_path": path_line, "runs": data},
    )
    return PartResult([section], targets)


PART = Part("layer", "FEFM layer throughput against the matmul rate", add_arguments, run)
