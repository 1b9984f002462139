"""Part `profile`: where a DeepFEFM training step goes, against the machine's matmul roofline.

For each Criteo shape (39 fields, batch 1024) it times the forward pass, forward + backward, and
the whole step (with the AdaGrad update), the FEFM layer's own forward + backward (as the trainer
runs it), the AdaGrad update alone (row-sparse tables and dense weights) on the path that ships
(the compiled `row_sparse_adagrad` kernel when it is built) and, side by side, on TensorFlow ops
(FEFM_LAB_KERNELS=0 while that update is traced), and compares them with the time the step's
useful matrix work would take at the float32 matmul rate measured in the same run:

    forward flops = 2 B P k^2 (FEFM) + 2 B sum(fan_in * fan_out) (DNN);  fwd + bwd = 3x forward.

Each shape runs on two paths in the same process, their calls taken in turn: the compiled
kernels (the fused FEFM kernel and the AdaGrad update; what ships, where `make setup` built them)
and `FEFM_LAB_KERNELS=0` (the TensorFlow ops). The targets read the shipped path.

Writes step_profile.md / .json (`python -m scripts.bench profile`, run by `make bench`); its
targets (step time within 1.5x of the bound) are in summary.md.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
from collections.abc import Callable

import numpy as np

from scripts.bench.layer import fefm_layer_calls, kernels_switched, shipped_fefm_path
from scripts.bench.machine import matmul_flops_per_second
from scripts.bench.measure import interleaved_median_seconds, median_seconds
from scripts.bench.op_profile import GROUPS, op_milliseconds
from scripts.bench.report import Part, PartResult, Section, Target

FIELDS, BATCH, REPEATS = 39, 1024, 10
SHAPES = ((16, (256, 128, 64)), (48, (256, 128, 64)), (16, (1024,) * 3), (48, (1024,) * 3))
SMOKE_SHAPES = ((4, (8,)),)
BOUND_SHARE_GOAL = 100 / 1.5  # %: a step within 1.5x of its matmul bound (issue 10)


def forward_flops(
    k: int, hidden: tuple[int, ...], fields: int = FIELDS, batch: int = BATCH
) -> float:
    """Useful matmul flops of one forward pass: the FEFM contraction and the DNN."""
    pairs = fields * (fields - 1) // 2
    widths = [fields * k + pairs, *hidden, 1]
    dnn = sum(a * b for a, b in itertools.pairwise(widths))
    return 2.0 * batch * (pairs * k * k + dnn)


@contextlib.contextmanager
def kernels_off():
    """FEFM_LAB_KERNELS=0 inside the block: what is traced there takes the TensorFlow-ops path."""
    with kernels_switched(False):
        yield


def step_calls(
    k: int, hidden: tuple[int, ...], fields: int = FIELDS, batch: int = BATCH
) -> dict[str, Callable[[], object]]:
    """A DeepFEFM step's parts as calls, traced now: the forward pass, forward + backward, the
    whole step, and the optimizer update alone (one batch's gradients) on the path that
    FEFM_LAB_KERNELS gives now ('optimizer') and on TensorFlow ops ('optimizer_ops')."""
    import tensorflow as tf

    from fefm_lab import SparseFeat, build_model
    from fefm_lab.training import Trainer, TrainerConfig

    rng = np.random.default_rng(0)
    columns = [SparseFeat(f"C{i}", 1000, k) for i in range(fields)]
    model = build_model("deepfefm", columns, columns, dnn_hidden_units=hidden, seed=0)
    trainer = Trainer(model, TrainerConfig(verbose=False))
    x = {c.name: tf.constant(rng.integers(0, 1000, (batch, 1)), tf.int32) for c in columns}
    y = tf.constant(rng.integers(0, 2, (batch, 1)), tf.float32)
    forward = tf.function(lambda features: model(features, training=True))
    _, gradients = trainer._gradients(x, y)
    step_counter = trainer.optimizer.iterations

    def update(function):
        # the counter's read waits for the update (ops run in order on the variable)
        return lambda: (function(gradients), step_counter.numpy())

    shipped_update = tf.function(trainer.optimizer.apply)
    ops_update = tf.function(trainer.optimizer.apply)
    with kernels_off():
        ops_update.get_concrete_function(gradients)  # traced now: TensorFlow ops
    calls = {
        "forward": lambda: forward(x).numpy(),
        "gradients": lambda: trainer._gradients(x, y)[0].numpy(),
        "step": lambda: trainer.train_step(x, y).numpy(),
        "optimizer": update(shipped_update),
        "optimizer_ops": update(ops_update),
    }
    for call in calls.values():
        call()  # traced under the switch as it is now
    return calls


def profile(
    k: int,
    hidden: tuple[int, ...],
    fields: int = FIELDS,
    batch: int = BATCH,
    repeats: int = REPEATS,
) -> dict[str, float]:
    """Median milliseconds of each of `step_calls`, the two optimizer paths in turn."""
    calls = step_calls(k, hidden, fields, batch)
    updates = {name: calls.pop(name) for name in ("optimizer", "optimizer_ops")}
    times = {name: median_seconds(call, repeats=repeats, warmup=1) for name, call in calls.items()}
    # the two paths in turn: a change in the machine's load falls on both alike
    times |= interleaved_median_seconds(updates, repeats=3 * repeats, warmup=1)
    return {name: 1000 * seconds for name, seconds in times.items()}


def profile_paths(
    k: int,
    hidden: tuple[int, ...],
    paths: dict[str, bool],
    fields: int = FIELDS,
    batch: int = BATCH,
    repeats: int = REPEATS,
) -> dict[str, dict[str, float]]:
    """`profile` and the FEFM layer's forward + backward ('fefm_layer') for each path (label:
    kernels on or off), every path's calls taken in turn so the machine's load falls on all
    alike. The optimizer update alone is timed against its TensorFlow-ops twin on each path."""
    steps, updates = {}, {}
    for label, kernel in paths.items():
        with kernels_switched(kernel):
            calls = step_calls(k, hidden, fields, batch)
            calls["fefm_layer"] = fefm_layer_calls(fields, k, batch)["forward_backward"]
        for name in ("optimizer", "optimizer_ops"):
            updates[f"{label}/{name}"] = calls.pop(name)
        steps |= {f"{label}/{name}": call for name, call in calls.items()}
    times = interleaved_median_seconds(steps, repeats=repeats, warmup=1)
    times |= interleaved_median_seconds(updates, repeats=3 * repeats, warmup=1)
    names = ("forward", "gradients", "step", "fefm_layer", "optimizer", "optimizer_ops")
    return {label: {name: 1000 * times[f"{label}/{name}"] for name in names} for label in paths}


def bound_target(k: int, hidden: tuple[int, ...], step_ms: float, bound_ms: float) -> Target:
    """The issue-10 goal for one shape: bound / step >= 1 / 1.5, in percent."""
    return Target(
        f"training step within 1.5x of the matmul bound, k={k}, DNN {'x'.join(map(str, hidden))}",
        100 * bound_ms / step_ms,
        BOUND_SHARE_GOAL,
        unit="%",
        note=f"step {step_ms:.1f} ms, bound {bound_ms:.1f} ms",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile-repeats", type=int, default=REPEATS, help="timed calls")


def run(args: argparse.Namespace) -> PartResult:
    shapes, fields, batch, repeats, matmul_size = SHAPES, FIELDS, BATCH, args.profile_repeats, 2048
    if args.smoke:
        shapes, fields, batch, repeats, matmul_size = SMOKE_SHAPES, 6, 64, 2, 256
    from fefm_lab import kernels
    from fefm_lab.training.optimizer import ROW_SPARSE_KERNEL

    pairs = fields * (fields - 1) // 2
    rate = matmul_flops_per_second(matmul_size)
    optimizer_path = kernels.status(ROW_SPARSE_KERNEL)
    fused_ships, fefm_path = shipped_fefm_path()
    paths = {"C++ kernels": True, "TensorFlow ops": False} if fused_ships else {}
    paths = paths or {"TensorFlow ops": False}
    rows, targets, op_columns = [], [], {}
    for k, hidden in shapes:
        bound_ms = 3 * forward_flops(k, hidden, fields, batch) / rate * 1000
        steps = {}
        for label, times in profile_paths(k, hidden, paths, fields, batch, repeats).items():
            steps[label] = times["step"]
            rows.append(
                [
                    k,
                    "x".join(map(str, hidden)),
                    label,
                    times["forward"],
                    times["gradients"],
                    times["fefm_layer"],
                    times["step"],
                    times["optimizer"],
                    times["optimizer_ops"],
                    bound_ms,
                    f"{bound_ms / times['step']:.0%}",
                    batch / times["step"] * 1000,
                    "",
                ]
            )
            print(rows[-1], flush=True)
        if len(steps) == 2:
            rows[-2][-1] = f"{steps['TensorFlow ops'] / steps['C++ kernels']:.2f}x"
        targets.append(bound_target(k, hidden, steps[next(iter(paths))], bound_ms))
        if fused_ships:
            with kernels_switched(True):
                step = step_calls(k, hidden, fields, batch)["step"]
            op_columns[f"k={k}, {'x'.join(map(str, hidden))}"] = op_milliseconds(step, repeats)
    section = Section(
        "Where a training step goes",
        text=(
            f"DeepFEFM at Criteo's shape ({fields} fields, P = {pairs}), batch {batch}, "
            f"AdaGrad, l2_mode batch, median of {repeats} calls. Float32 matmul rate measured "
            f"in the same run: {rate / 1e9:.0f} GFLOP/s. 'matmul bound' is the step's useful "
            "matrix work (FEFM contraction and DNN, forward and backward) at that rate: no "
            "implementation of the same float32 maths on this machine can take less. 'FEFM layer "
            "fwd+bwd' is the layer alone on random embeddings, inside the step's fwd+bwd. "
            "'optimizer' is the AdaGrad update of one batch's gradients alone, inside the step, "
            f"on the path that ships ({optimizer_path}); 'optimizer, TF ops' the same update "
            "traced with FEFM_LAB_KERNELS=0 (unique, segment sum, scatters and gather for the "
            "tables; about seven element-wise ops per dense weight), the two timed in turn. "
            f"Paths: 'C++ kernels' is what ships here ({fefm_path}; and the AdaGrad update), "
            "'TensorFlow ops' the whole step with FEFM_LAB_KERNELS=0 (both optimizer columns "
            "are then the TensorFlow ops); the two paths' calls are taken in turn. 'speed-up' is "
            "the step time of the second over the first. The targets read the first row of each "
            "shape."
        ),
        headers=[
            "k",
            "DNN",
            "path",
            "forward (ms)",
            "fwd+bwd (ms)",
            "FEFM layer fwd+bwd (ms)",
            "step (ms)",
            "optimizer (ms)",
            "optimizer, TF ops (ms)",
            "matmul bound (ms)",
            "bound / step",
            "samples/s",
            "speed-up",
        ],
        rows=rows,
        data={
            "matmul_flops_per_second": rate,
            "optimizer_path": optimizer_path,
            "fefm_path": fefm_path,
            "rows": rows,
        },
    )
    sections = [section]
    if op_columns:
        sections.append(op_section(op_columns, repeats))
    return PartResult(sections, targets)


def op_section(columns: dict[str, tuple[dict[str, float], float]], repeats: int) -> Section:
    """The shipped step op by op: one column per shape, one row per op group."""
    rows = [[group, *(groups[group] for groups, _ in columns.values())] for group in GROUPS]
    rows.append(["sum of op time", *(sum(groups.values()) for groups, _ in columns.values())])
    rows.append(["step, wall time under the profiler", *(wall for _, wall in columns.values())])
    return Section(
        "Op by op: the step that ships",
        text=(
            f"TensorFlow's profiler over {repeats} steps of the shipped path (C++ kernels), "
            "each op's duration summed per step into groups (scripts/bench/op_profile.py), in "
            "milliseconds. The executor runs independent ops at the same time on the two cores, "
            "so the groups add up to more than the step's wall time; the profiler adds a little "
            "to both. 'DNN matmuls' are the dense layers' products (forward fused with bias and "
            "ReLU); 'lookups' the gathers from the embedding and linear tables, the batch L2 "
            "terms and the gradients that flow back into them; 'other' the input concatenation, "
            "slices, bias and ReLU gradients, the gradient sums and the loss."
        ),
        headers=["op group", *(f"{shape} (ms)" for shape in columns)],
        rows=rows,
        data={"columns": {shape: {"groups": g, "wall_ms": w} for shape, (g, w) in columns.items()}},
    )


PART = Part(
    "profile",
    "a training step split into forward, backward and update, against the matmul bound",
    add_arguments,
    run,
    in_bench_report=False,
    stem="step_profile",
    title="Where a training step goes",
)
