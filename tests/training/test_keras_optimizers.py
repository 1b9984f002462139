"""fefm-lab's Keras optimizers (`fefm_lab.RowSparseAdagrad`, `RowSparseAdam`): Keras's maths,
row-sparse, on the kernel and the TensorFlow-ops path, in `compile` + `fit`, saved and reloaded."""

from __future__ import annotations

import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf

import fefm_lab
from fefm_lab import SparseFeat, kernels
from fefm_lab.kernels.build import ensure_built
from fefm_lab.training import keras_optimizers
from fefm_lab.training.optimizer import ROW_SPARSE_KERNEL


@pytest.fixture(scope="module")
def built_kernel():
    return ensure_built(ROW_SPARSE_KERNEL)


@pytest.fixture(params=["kernel", "ops"])
def path(request, built_kernel, monkeypatch) -> str:
    """Each test runs on the compiled kernel and on the TensorFlow-ops path."""
    monkeypatch.setenv(kernels.SWITCH_VARIABLE, "1" if request.param == "kernel" else "0")
    return request.param


def _gradients():
    """Three row-sparse gradients of a (6, 2) table: unsorted, repeated rows, rows never touched."""
    rng = np.random.default_rng(3)
    index_lists = ([4, 1, 4], [0, 4, 0, 2], [1, 1, 5])
    return [
        (np.array(ids, np.int32), rng.normal(size=(len(ids), 2)).astype(np.float32))
        for ids in index_lists
    ]


def _dense(indices: np.ndarray, values: np.ndarray, rows: int = 6) -> np.ndarray:
    out = np.zeros((rows, values.shape[1]), np.float64)
    np.add.at(out, indices, values.astype(np.float64))
    return out


def test_row_sparse_adagrad_equals_a_float64_reference_and_keras(path) -> None:
    start = np.arange(12, dtype=np.float32).reshape(6, 2) / 10
    table = keras.Variable(start.copy())
    optimizer = fefm_lab.RowSparseAdagrad(learning_rate=0.1)
    apply = tf.function(lambda i, v: optimizer.apply([tf.IndexedSlices(v, i)], [table]))
    w, a = start.astype(np.float64), np.full((6, 2), 0.1)
    for indices, values in _gradients():
        apply(tf.constant(indices), tf.constant(values))
        g = _dense(indices, values)
        a += g**2
        w -= 0.1 * g / np.sqrt(a + 1e-7)
    np.testing.assert_allclose(table.numpy(), w, rtol=2e-6, atol=1e-7)
    np.testing.assert_array_equal(table.numpy()[3], start[3])  # row 3 never touched
    (accumulator,) = [v for v in optimizer.variables if "accumulator" in v.path]
    np.testing.assert_allclose(accumulator.numpy(), a, rtol=2e-6)

    reference = keras.Variable(start.copy())  # Keras's own AdaGrad, on the dense gradients
    keras_adagrad = keras.optimizers.Adagrad(learning_rate=0.1)
    for indices, values in _gradients():
        keras_adagrad.apply([tf.constant(_dense(indices, values), tf.float32)], [reference])
    np.testing.assert_allclose(table.numpy(), reference.numpy(), rtol=1e-6, atol=1e-7)


def test_row_sparse_adagrad_dense_gradient_is_keras_adagrad(path) -> None:
    rng = np.random.default_rng(4)
    start = rng.normal(size=(4, 3)).astype(np.float32)
    gradients = [rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3)]
    mine, theirs = keras.Variable(start.copy()), keras.Variable(start.copy())
    ours = fefm_lab.RowSparseAdagrad(learning_rate=0.05, initial_accumulator_value=0.2)
    keras_adagrad = keras.optimizers.Adagrad(learning_rate=0.05, initial_accumulator_value=0.2)
    for gradient in gradients:
        ours.apply([tf.constant(gradient)], [mine])
        keras_adagrad.apply([tf.constant(gradient)], [theirs])
    np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)


def test_row_sparse_adam_is_lazy_adam_on_rows_and_keras_adam_on_dense(path) -> None:
    start = np.arange(12, dtype=np.float32).reshape(6, 2) / 10
    table = keras.Variable(start.copy())
    optimizer = fefm_lab.RowSparseAdam(learning_rate=0.01)
    w, m, v = start.astype(np.float64), np.zeros((6, 2)), np.zeros((6, 2))
    for t, (indices, values) in enumerate(_gradients(), start=1):
        optimizer.apply([tf.IndexedSlices(tf.constant(values), tf.constant(indices))], [table])
        rows = np.unique(indices)
        g = _dense(indices, values)[rows]
        m[rows] = 0.9 * m[rows] + 0.1 * g
        v[rows] = 0.999 * v[rows] + 0.001 * g**2
        w[rows] -= 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m[rows] / (np.sqrt(v[rows]) + 1e-7)
    np.testing.assert_allclose(table.numpy(), w, rtol=2e-6, atol=1e-7)
    np.testing.assert_array_equal(table.numpy()[3], start[3])

    dense_start = np.random.default_rng(5).normal(size=(3, 2)).astype(np.float32)
    mine, theirs = keras.Variable(dense_start.copy()), keras.Variable(dense_start.copy())
    ours, keras_adam = fefm_lab.RowSparseAdam(0.02), keras.optimizers.Adam(0.02)
    for step in range(3):
        gradient = tf.constant(np.full((3, 2), step - 1.0, np.float32))
        ours.apply([gradient], [mine])
        keras_adam.apply([gradient], [theirs])
    np.testing.assert_array_equal(mine.numpy(), theirs.numpy())  # Keras's own update


def test_amsgrad_is_refused() -> None:
    with pytest.raises(ValueError, match="RowSparseAdam does not support `amsgrad=True`"):
        fefm_lab.RowSparseAdam(amsgrad=True)


def test_kernel_path_traces_one_row_sparse_op_and_no_whole_table_work(built_kernel, monkeypatch):
    monkeypatch.setenv(kernels.SWITCH_VARIABLE, "1")
    table = keras.Variable(np.zeros((1000, 4), np.float32))
    optimizer = fefm_lab.RowSparseAdagrad(0.1)
    optimizer.build([table])
    apply = tf.function(lambda i, v: optimizer.apply([tf.IndexedSlices(v, i)], [table]))
    graph = apply.get_concrete_function(
        tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, 4], tf.float32)
    ).graph
    types = {op.type for op in graph.get_operations()}
    assert "FefmLabRowSparseAdagrad" in types
    assert not types & {"Sqrt", "RealDiv", "ResourceScatterAdd"}  # Keras's AdaGrad: every row


def _model_and_data(k: int = 3):
    columns = [SparseFeat(f"c{i}", vocabulary_size=7, embedding_dim=k) for i in range(3)]
    rng = np.random.default_rng(0)
    x = {c.name: rng.integers(0, 7, (64, 1)).astype("int32") for c in columns}
    y = (rng.random((64, 1)) < 0.4).astype("float32")
    return columns, x, y


def _fit_weights(optimizer: keras.optimizers.Optimizer) -> list[np.ndarray]:
    columns, x, y = _model_and_data()
    keras.utils.set_random_seed(2)
    model = fefm_lab.DeepFEFM(columns, columns, dnn_hidden_units=(8,), seed=3)
    model.compile(optimizer, "binary_crossentropy")
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    return model.get_weights()


class DenseKerasAdagrad(keras.optimizers.Adagrad):
    """Keras's AdaGrad on the dense gradient (Keras 3's own row-sparse branch squares each
    looked-up row before repeats are summed: another update where a batch repeats a row)."""

    def update_step(self, gradient, variable, learning_rate):
        super().update_step(tf.convert_to_tensor(gradient), variable, learning_rate)


def test_fit_with_row_sparse_adagrad_equals_fit_with_keras_adagrad(path) -> None:
    """Same maths in `compile` + `fit`: 8 steps of a DeepFEFM land on the weights of Keras's
    AdaGrad on dense gradients (float sums in another order: last-digit differences only)."""
    ours = _fit_weights(fefm_lab.RowSparseAdagrad(0.05))
    theirs = _fit_weights(DenseKerasAdagrad(0.05))
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(ours, _initial_weights(), strict=True))


def _initial_weights() -> list[np.ndarray]:
    columns, _, _ = _model_and_data()
    keras.utils.set_random_seed(2)
    return fefm_lab.DeepFEFM(columns, columns, dnn_hidden_units=(8,), seed=3).get_weights()


@pytest.mark.parametrize("kind", ["adagrad", "adam"])
def test_xla_compiled_updates_equal_the_row_sparse_ones(built_kernel, kind) -> None:
    """Under XLA (Keras's `jit_compile=True`, the default on a GPU) there is no tf.unique and no
    custom op: the rows' update runs over the whole table, masked for lazy Adam; same numbers."""
    make = fefm_lab.RowSparseAdagrad if kind == "adagrad" else fefm_lab.RowSparseAdam
    start = np.arange(12, dtype=np.float32).reshape(6, 2) / 10
    results = []
    for jit_compile in (False, True):
        table = keras.Variable(start.copy())
        optimizer = make(learning_rate=0.05)
        optimizer.build([table])
        apply = tf.function(
            lambda i, v: optimizer.apply([tf.IndexedSlices(v, i)], [table]),  # noqa: B023
            jit_compile=jit_compile,
        )
        for indices, values in _gradients():
            apply(tf.constant(indices), tf.constant(values))
        results.append(table.numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(results[1][3], start[3])


def test_fit_under_xla_equals_fit_without(built_kernel) -> None:
    columns, x, y = _model_and_data()
    weights = []
    for jit_compile in (False, True):
        keras.utils.set_random_seed(2)
        model = fefm_lab.DeepFEFM(columns, columns, dnn_hidden_units=(8,), seed=3)
        model.compile(
            fefm_lab.RowSparseAdagrad(0.05), "binary_crossentropy", jit_compile=jit_compile
        )
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    for plain, xla in zip(*weights, strict=True):
        np.testing.assert_allclose(xla, plain, rtol=1e-4, atol=1e-6)


def test_compiled_model_saves_and_reloads_with_its_optimizer(tmp_path, built_kernel) -> None:
    columns, x, y = _model_and_data()
    model = fefm_lab.DeepFEFM(columns, columns, dnn_hidden_units=(4,), seed=1)
    model.compile(fefm_lab.RowSparseAdagrad(0.03, epsilon=1e-6), "binary_crossentropy")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, fefm_lab.RowSparseAdagrad)
    assert loaded.optimizer.get_config()["epsilon"] == 1e-6
    np.testing.assert_allclose(loaded.optimizer.learning_rate.numpy(), 0.03)
    for mine, theirs in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_docstring_examples_run() -> None:
    result = doctest.testmod(keras_optimizers, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 1 and result.failed == 0
