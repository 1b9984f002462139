"""The row-sparse optimizer equals Keras's own AdaGrad / Adam on the rows it updates."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from fefm_lab.training.optimizer import RowSparseOptimizer


def _keras_reference(kind: str, start: np.ndarray, gradients: list[np.ndarray], lr: float):
    variable = keras.Variable(start.copy())
    optimizer = (
        keras.optimizers.Adagrad(learning_rate=lr)
        if kind == "adagrad"
        else keras.optimizers.Adam(learning_rate=lr)
    )
    for gradient in gradients:
        optimizer.apply([tf.constant(gradient)], [variable])
    return np.array(variable.numpy())


@pytest.mark.parametrize("kind", ["adagrad", "adam"])
def test_dense_updates_equal_keras(kind: str) -> None:
    rng = np.random.default_rng(0)
    start = rng.normal(size=(6, 3)).astype(np.float32)
    gradients = [rng.normal(size=(6, 3)).astype(np.float32) for _ in range(4)]
    variable = tf.Variable(start.copy())
    optimizer = RowSparseOptimizer(kind, 0.05, [variable])
    for gradient in gradients:
        optimizer.apply([tf.constant(gradient)])
    expected = _keras_reference(kind, start, gradients, 0.05)
    np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6, atol=1e-7)


def test_sparse_adagrad_equals_dense_adagrad_and_sums_repeated_rows() -> None:
    """AdaGrad leaves zero-gradient rows alone, so the sparse update is exactly the dense one."""
    rng = np.random.default_rng(1)
    start = rng.normal(size=(8, 2)).astype(np.float32)
    indices = np.array([1, 5, 1, 7], dtype=np.int32)  # row 1 twice: its gradients add up
    values = rng.normal(size=(4, 2)).astype(np.float32)
    dense = np.zeros_like(start)
    np.add.at(dense, indices, values)

    sparse_var = tf.Variable(start.copy())
    sparse_opt = RowSparseOptimizer("adagrad", 0.1, [sparse_var])
    for _ in range(3):
        sparse_opt.apply([tf.IndexedSlices(tf.constant(values), tf.constant(indices))])

    expected = _keras_reference("adagrad", start, [dense] * 3, 0.1)
    np.testing.assert_allclose(sparse_var.numpy(), expected, rtol=1e-6, atol=1e-7)
    untouched = [0, 2, 3, 4, 6]
    np.testing.assert_array_equal(sparse_var.numpy()[untouched], start[untouched])


def test_sparse_adagrad_hand_computed() -> None:
    """a = 0.1 + g^2, w -= lr * g / sqrt(a + 1e-7) on the touched row only."""
    variable = tf.Variable(np.array([[1.0], [2.0]], dtype=np.float32))
    optimizer = RowSparseOptimizer("adagrad", 0.5, [variable])
    optimizer.apply([tf.IndexedSlices(tf.constant([[0.3]]), tf.constant([1]))])
    expected_row = 2.0 - 0.5 * 0.3 / np.sqrt(0.1 + 0.09 + 1e-7)
    np.testing.assert_allclose(variable.numpy(), [[1.0], [expected_row]], rtol=1e-6)


def test_lazy_adam_updates_touched_rows_like_dense_adam() -> None:
    rng = np.random.default_rng(2)
    start = rng.normal(size=(5, 3)).astype(np.float32)
    values = rng.normal(size=(2, 3)).astype(np.float32)
    indices = np.array([0, 3], dtype=np.int32)
    dense = np.zeros_like(start)
    dense[indices] = values

    variable = tf.Variable(start.copy())
    optimizer = RowSparseOptimizer("adam", 0.01, [variable])
    optimizer.apply([tf.IndexedSlices(tf.constant(values), tf.constant(indices))])
    expected = _keras_reference("adam", start, [dense], 0.01)
    np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6, atol=1e-7)


def test_none_gradient_leaves_variable_and_bad_arguments_raise() -> None:
    variable = tf.Variable(np.ones((2, 2), np.float32))
    optimizer = RowSparseOptimizer("adagrad", 0.1, [variable])
    optimizer.apply([None])
    np.testing.assert_array_equal(variable.numpy(), np.ones((2, 2)))
    with pytest.raises(ValueError, match="'sgd'"):
        RowSparseOptimizer("sgd", 0.1, [variable])
    with pytest.raises(ValueError, match="learning_rate must be > 0, received 0"):
        RowSparseOptimizer("adam", 0, [variable])
    with pytest.raises(ValueError, match="expected 1 gradients, received 2"):
        optimizer.apply([None, None])
