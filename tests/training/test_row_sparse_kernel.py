"""The compiled row-sparse AdaGrad / Adam kernel: float64 references, ops path, errors, fallback.

The kernel is built here when it is missing or stale (as `make setup` does), so these tests run
it rather than skipping; a machine without a C++ compiler, or a build that fails, fails them.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from fefm_lab import SparseFeat, build_model, kernels
from fefm_lab.kernels.build import ensure_built
from fefm_lab.training import Trainer, TrainerConfig
from fefm_lab.training.optimizer import (
    ADAGRAD_INITIAL_ACCUMULATOR,
    ADAM_BETA_1,
    ADAM_BETA_2,
    EPSILON,
    ROW_SPARSE_KERNEL,
    RowSparseOptimizer,
    describe_path,
    fused_ops,
)

FUSED_OPS = {
    "FefmLabRowSparseAdagrad",
    "FefmLabRowSparseAdam",
    "FefmLabDenseAdagrad",
    "FefmLabDenseAdam",
}


@pytest.fixture(scope="module")
def built_kernel():
    """The kernel's op module, built first when its library is missing or stale."""
    return ensure_built(ROW_SPARSE_KERNEL)


@pytest.fixture
def kernels_on(built_kernel, monkeypatch):
    monkeypatch.setenv(kernels.SWITCH_VARIABLE, "1")
    return built_kernel


def _traced_op_types(optimizer: RowSparseOptimizer, width: int, jit_compile=False) -> set[str]:
    """Op types of `optimizer.apply` traced for one row-sparse gradient of rows `width` wide."""
    apply = tf.function(
        lambda indices, values: optimizer.apply([tf.IndexedSlices(values, indices)]),
        jit_compile=jit_compile,
    )
    specs = tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, width], tf.float32)
    return {op.type for op in apply.get_concrete_function(*specs).graph.get_operations()}


def _steps(index_dtype, rows: int = 7, width: int = 3, dtype=np.float32):
    """Three hand-built gradients: unsorted indices with repeats, one row touched only once."""
    rng = np.random.default_rng(5)
    index_lists = ([4, 1, 4, 6, 1, 4], [0, 6, 6, 2], [3, 3, 3, 1, 5, 0, 3])
    return [
        (np.array(ids, index_dtype), rng.normal(size=(len(ids), width)).astype(dtype))
        for ids in index_lists
    ]


def _adagrad_reference(start: np.ndarray, steps, lr: float):
    """Float64: per distinct row g = sum of its values; a += g^2; w -= lr g / sqrt(a + eps)."""
    weights = start.astype(np.float64)
    accumulator = np.full_like(weights, ADAGRAD_INITIAL_ACCUMULATOR)
    for indices, values in steps:
        summed = np.zeros_like(weights)
        np.add.at(summed, indices, values.astype(np.float64))
        touched = np.unique(indices)
        g = summed[touched]
        accumulator[touched] += g**2
        weights[touched] -= lr * g / np.sqrt(accumulator[touched] + EPSILON)
    return weights, accumulator


def _lazy_adam_reference(start: np.ndarray, steps, lr: float):
    """Float64 lazy Adam: moments and weights change only on the rows of each step."""
    weights = start.astype(np.float64)
    first, second = np.zeros_like(weights), np.zeros_like(weights)
    for t, (indices, values) in enumerate(steps, start=1):
        summed = np.zeros_like(weights)
        np.add.at(summed, indices, values.astype(np.float64))
        rows = np.unique(indices)
        g = summed[rows]
        first[rows] = ADAM_BETA_1 * first[rows] + (1 - ADAM_BETA_1) * g
        second[rows] = ADAM_BETA_2 * second[rows] + (1 - ADAM_BETA_2) * g**2
        rate = lr * np.sqrt(1 - ADAM_BETA_2**t) / (1 - ADAM_BETA_1**t)
        weights[rows] -= rate * first[rows] / (np.sqrt(second[rows]) + EPSILON)
    return weights, first, second


def _run(kind: str, start: np.ndarray, steps, lr: float):
    variable = tf.Variable(start.copy())
    optimizer = RowSparseOptimizer(kind, lr, [variable])
    for indices, values in steps:
        optimizer.apply([tf.IndexedSlices(tf.constant(values), tf.constant(indices))])
    return variable, optimizer


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_fused_adagrad_equals_float64_reference(kernels_on, index_dtype) -> None:
    start = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    steps = _steps(index_dtype)
    variable, optimizer = _run("adagrad", start, steps, lr=0.3)
    assert fused_ops(variable) is kernels_on
    assert "FefmLabRowSparseAdagrad" in _traced_op_types(optimizer, 3)

    weights, accumulator = _adagrad_reference(start, steps, lr=0.3)
    np.testing.assert_allclose(variable.numpy(), weights, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(optimizer._slots[0][0].numpy(), accumulator, rtol=2e-6)
    # Every row was touched at some step but row 5 only at the last one: check it by hand.
    g5 = steps[2][1][4].astype(np.float64)
    a5 = ADAGRAD_INITIAL_ACCUMULATOR + g5**2
    np.testing.assert_allclose(
        variable.numpy()[5], start[5] - 0.3 * g5 / np.sqrt(a5 + EPSILON), rtol=1e-6
    )


def test_fused_adagrad_on_float64_variables_is_exact_to_rounding(kernels_on) -> None:
    start = np.random.default_rng(1).normal(size=(7, 3))
    steps = _steps(np.int64, dtype=np.float64)
    variable, optimizer = _run("adagrad", start, steps, lr=0.3)
    weights, accumulator = _adagrad_reference(start, steps, lr=0.3)
    np.testing.assert_allclose(variable.numpy(), weights, rtol=1e-14)
    np.testing.assert_allclose(optimizer._slots[0][0].numpy(), accumulator, rtol=1e-14)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_fused_lazy_adam_equals_float64_reference(kernels_on, index_dtype) -> None:
    start = np.random.default_rng(2).normal(size=(7, 3)).astype(np.float32)
    steps = _steps(index_dtype)
    variable, optimizer = _run("adam", start, steps, lr=0.01)
    assert "FefmLabRowSparseAdam" in _traced_op_types(optimizer, 3)

    weights, first, second = _lazy_adam_reference(start, steps, lr=0.01)
    np.testing.assert_allclose(variable.numpy(), weights, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(optimizer._slots[0][0].numpy(), first, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(optimizer._slots[0][1].numpy(), second, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("kind", ["adagrad", "adam"])
def test_fused_update_equals_the_eager_ops_path_bit_for_bit(kernels_on, monkeypatch, kind):
    """Same float operations in the same order: equal to the last bit to TensorFlow's eager ops.

    (Inside a tf.function, grappler rewrites the ops path's x / sqrt(y) into x * rsqrt(y), which
    can differ in the last bit; the training-step test below compares at a tolerance.)
    """
    rng = np.random.default_rng(3)
    start = rng.normal(size=(40, 5)).astype(np.float32)
    steps = [
        (rng.integers(0, 40, 200).astype(np.int32), rng.normal(size=(200, 5)).astype(np.float32))
        for _ in range(3)
    ]
    fused, fused_optimizer = _run(kind, start, steps, lr=0.05)
    monkeypatch.setenv(kernels.SWITCH_VARIABLE, "0")
    plain, plain_optimizer = _run(kind, start, steps, lr=0.05)
    np.testing.assert_array_equal(fused.numpy(), plain.numpy())
    for ours, theirs in zip(
        fused_optimizer.state_variables, plain_optimizer.state_variables, strict=True
    ):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def _deepfefm_trainer(jit_compile: bool, optimizer: str) -> tuple[Trainer, list]:
    columns = [SparseFeat(f"c{i}", 30, 4) for i in range(5)]
    keras.utils.set_random_seed(0)
    model = build_model("deepfefm", columns, columns, dnn_hidden_units=(8,), seed=0)
    trainer = Trainer(
        model, TrainerConfig(verbose=False, jit_compile=jit_compile, optimizer=optimizer)
    )
    return trainer, columns


@pytest.mark.parametrize(
    ("jit_compile", "optimizer"), [(False, "adagrad"), (True, "adagrad"), (False, "adam")]
)
def test_deepfefm_training_steps_equal_the_ops_path(
    kernels_on, monkeypatch, jit_compile: bool, optimizer: str
) -> None:
    """Three DeepFEFM steps with the kernel and with FEFM_LAB_KERNELS=0: same weights and slots.

    Under trainer.jit_compile=true only forward + backward is XLA-compiled; the update runs in a
    plain graph, so the kernel runs there too.
    """
    rng = np.random.default_rng(4)
    batches = [
        (
            {f"c{i}": tf.constant(rng.integers(0, 30, (64, 1)), tf.int32) for i in range(5)},
            tf.constant(rng.integers(0, 2, (64, 1)), tf.float32),
        )
        for _ in range(3)
    ]
    results = {}
    for setting in ("1", "0"):
        monkeypatch.setenv(kernels.SWITCH_VARIABLE, setting)
        trainer, _ = _deepfefm_trainer(jit_compile, optimizer)
        losses = [float(trainer.train_step(x, y)) for x, y in batches]
        graph = trainer.train_step.get_concrete_function(*batches[0]).graph
        fused_ops = FUSED_OPS & {op.type for op in graph.get_operations()}
        state = [v.numpy() for v in trainer.model.variables + trainer.optimizer.state_variables]
        results[setting] = losses, fused_ops, state
    (fused_losses, fused_ops, fused_state), (plain_losses, plain_ops, plain_state) = (
        results["1"],
        results["0"],
    )
    # row-sparse: the embedding and linear tables; dense: the field matrices, DNN and bias
    suffix = "Adagrad" if optimizer == "adagrad" else "Adam"
    assert fused_ops == {f"FefmLabRowSparse{suffix}", f"FefmLabDense{suffix}"}
    assert plain_ops == set()
    np.testing.assert_allclose(fused_losses, plain_losses, rtol=1e-6)
    for ours, theirs in zip(fused_state, plain_state, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def _dense_reference(kind: str, start: np.ndarray, gradients, lr: float) -> list[np.ndarray]:
    """Float64 AdaGrad / Adam on every element: the weights then the slots."""
    w = start.astype(np.float64)
    if kind == "adagrad":
        a = np.full_like(w, ADAGRAD_INITIAL_ACCUMULATOR)
        for g in gradients:
            a += g.astype(np.float64) ** 2
            w -= lr * g / np.sqrt(a + EPSILON)
        return [w, a]
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gradients, start=1):
        m = ADAM_BETA_1 * m + (1 - ADAM_BETA_1) * g
        v = ADAM_BETA_2 * v + (1 - ADAM_BETA_2) * g.astype(np.float64) ** 2
        w -= lr * np.sqrt(1 - ADAM_BETA_2**t) / (1 - ADAM_BETA_1**t) * m / (np.sqrt(v) + EPSILON)
    return [w, m, v]


@pytest.mark.parametrize("kind", ["adagrad", "adam"])
def test_fused_dense_update_equals_float64_reference_and_the_eager_ops(
    kernels_on, monkeypatch, kind
) -> None:
    """A dense gradient (DNN, field matrices): one op; > one chunk of 4096 elements, 3 steps."""
    rng = np.random.default_rng(6)
    start = rng.normal(size=(70, 90)).astype(np.float32)
    gradients = [rng.normal(size=start.shape).astype(np.float32) for _ in range(3)]

    def run():
        variable = tf.Variable(start.copy())
        optimizer = RowSparseOptimizer(kind, 0.05, [variable])
        for gradient in gradients:
            optimizer.apply([tf.constant(gradient)])
        return [variable.numpy(), *(slot.numpy() for slot in optimizer.state_variables[1:])]

    fused = run()
    probe = RowSparseOptimizer(kind, 0.05, [tf.Variable(start)])
    apply = tf.function(probe.apply).get_concrete_function([tf.TensorSpec(start.shape)])
    assert {op.type for op in apply.graph.get_operations()} & FUSED_OPS == {
        "FefmLabDenseAdagrad" if kind == "adagrad" else "FefmLabDenseAdam"
    }
    # Adam's rate sqrt(1 - 0.999^t) / (1 - 0.9^t) is taken in float32 on both paths (as Keras
    # does): 1 - 0.999^t cancels to ~1e-5 relative, ~1e-6 on a step of lr * 3.16.
    atol = 1e-7 if kind == "adagrad" else 3e-6
    for ours, expected in zip(fused, _dense_reference(kind, start, gradients, 0.05), strict=True):
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=atol)
    monkeypatch.setenv(kernels.SWITCH_VARIABLE, "0")
    for ours, theirs in zip(fused, run(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_dense_op_checks_shapes_and_coefficients(built_kernel) -> None:
    variable = tf.Variable(np.zeros((4, 3), np.float32))
    accumulator = tf.Variable(np.full((4, 3), 0.1, np.float32))

    def call(grad, lr):
        built_kernel.fefm_lab_dense_adagrad(
            var=variable.handle,
            accum=accumulator.handle,
            lr=lr,
            epsilon=tf.constant(EPSILON, tf.float32),
            grad=grad,
        )

    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"the gradient's shape \[3,4\] differs from the variable's \[4,3\]",
    ):
        call(tf.ones((3, 4)), tf.constant(0.1))
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"coefficient input 2 must be a scalar, got shape \[2\]",
    ):
        call(tf.ones((4, 3)), tf.constant([0.1, 0.2]))
    np.testing.assert_array_equal(variable.numpy(), np.zeros((4, 3)))
    np.testing.assert_array_equal(accumulator.numpy(), np.full((4, 3), 0.1, np.float32))


@pytest.mark.parametrize("kind", ["adagrad", "adam"])
@pytest.mark.parametrize("bad_index", [7, -1, 2**40])
def test_out_of_range_index_is_an_error_and_changes_nothing(kernels_on, kind, bad_index) -> None:
    start = np.arange(21, dtype=np.float32).reshape(7, 3)
    variable = tf.Variable(start.copy())
    optimizer = RowSparseOptimizer(kind, 0.1, [variable])
    slots_before = [s.numpy().copy() for s in optimizer.state_variables[1:]]
    indices = tf.constant([2, bad_index, 2], tf.int64)
    values = tf.ones((3, 3))
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        optimizer.apply([tf.IndexedSlices(values, indices)])
    assert (
        f"indices[1] = {bad_index} is not a row of the variable, which has 7 rows "
        "(expected 0 <= index < 7)"
    ) in raised.value.message
    np.testing.assert_array_equal(variable.numpy(), start)
    for slot, before in zip(optimizer.state_variables[1:], slots_before, strict=True):
        np.testing.assert_array_equal(slot.numpy(), before)


def test_values_of_the_wrong_shape_are_an_error(built_kernel) -> None:
    variable = tf.Variable(np.zeros((4, 3), np.float32))
    accumulator = tf.Variable(np.full((4, 3), 0.1, np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"values must have shape \(2\)"):
        built_kernel.fefm_lab_row_sparse_adagrad(
            var=variable.handle,
            accum=accumulator.handle,
            lr=tf.constant(0.1),
            epsilon=tf.constant(EPSILON, tf.float32),
            values=tf.ones((2, 2)),
            indices=tf.constant([0, 1]),
        )
    np.testing.assert_array_equal(variable.numpy(), np.zeros((4, 3)))


def test_missing_library_falls_back_to_the_ops_path(built_kernel, monkeypatch, tmp_path) -> None:
    """No built library: the status says why, the update runs as TensorFlow ops, same numbers."""
    monkeypatch.setenv(kernels.SWITCH_VARIABLE, "1")
    monkeypatch.setattr(kernels, "KERNEL_DIR", tmp_path)
    kernels._load.cache_clear()
    try:
        assert kernels.status(ROW_SPARSE_KERNEL) == (
            f"kernel {ROW_SPARSE_KERNEL}: not used "
            f"(_{ROW_SPARSE_KERNEL}.so is not built (run `make setup`))"
        )
        start = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
        steps = _steps(np.int32)
        variable, optimizer = _run("adagrad", start, steps, lr=0.3)
        assert fused_ops(variable) is None
        op_types = _traced_op_types(optimizer, 3)
        assert not op_types & FUSED_OPS
        assert {"Unique", "UnsortedSegmentSum", "ResourceScatterAdd"} <= op_types
        weights, _ = _adagrad_reference(start, steps, lr=0.3)
        np.testing.assert_allclose(variable.numpy(), weights, rtol=2e-6, atol=1e-7)
    finally:
        kernels._load.cache_clear()


def test_kernels_off_and_xla_graphs_take_the_ops_path(kernels_on, monkeypatch) -> None:
    variable = tf.Variable(np.ones((10, 3), np.float32))
    optimizer = RowSparseOptimizer("adagrad", 0.1, [variable])
    assert "FefmLabRowSparseAdagrad" in _traced_op_types(optimizer, 3)
    # XLA runs neither a custom op nor tf.unique: a jit_compile graph sums the rows into the
    # table's shape with TensorFlow ops (and it compiles: the update runs under XLA).
    xla_ops = _traced_op_types(optimizer, 3, jit_compile=True)
    assert not xla_ops & FUSED_OPS and "Unique" not in xla_ops
    assert "UnsortedSegmentSum" in xla_ops
    apply = tf.function(lambda i, v: optimizer.apply([tf.IndexedSlices(v, i)]), jit_compile=True)
    apply(tf.constant([2, 2], tf.int32), tf.constant(np.ones((2, 3), np.float32)))
    # a = 0.1 + 2^2 on row 2 only; w = 1 - 0.1 * 2 / sqrt(4.1 + 1e-7)
    np.testing.assert_allclose(variable.numpy()[2], 1 - 0.2 / np.sqrt(4.1 + 1e-7), rtol=1e-6)
    np.testing.assert_array_equal(variable.numpy()[[0, 1, 3]], 1.0)
    monkeypatch.setenv(kernels.SWITCH_VARIABLE, "0")
    assert fused_ops(variable) is None
    assert not _traced_op_types(optimizer, 3) & FUSED_OPS


def test_the_run_log_line_names_the_path(kernels_on, monkeypatch) -> None:
    status = kernels.status(ROW_SPARSE_KERNEL)
    assert describe_path("adagrad") == f"adagrad updates: fused C++ kernel ({status})"
    assert describe_path("adam", "GPU:0 (NVIDIA H200)") == (
        "adam updates: TensorFlow ops (the kernel is CPU-only, the variables are on "
        "GPU:0 (NVIDIA H200))"
    )
    monkeypatch.setenv(kernels.SWITCH_VARIABLE, "0")
    assert describe_path("adagrad") == (
        "adagrad updates: TensorFlow ops (kernel row_sparse_adagrad: off (FEFM_LAB_KERNELS=0))"
    )
