"""Keras optimizers that update only the embedding rows a batch touched: for `model.compile`.

Keras 3's AdaGrad turns a row-sparse (`tf.IndexedSlices`) gradient into whole-table work: its
`sqrt(accumulator + eps)` and the division run over every row of the table each step, so a
`model.fit` step grows with the vocabulary. These subclasses keep Keras's optimizers in every
other respect (schedules, clipping, weight decay, loss scaling, EMA, saving) and replace only the
per-variable update with fefm-lab's (`fefm_lab.training.optimizer`): for a row-sparse gradient
the sum per distinct row and the update of those rows in one compiled op
(`fefm_lab/kernels/row_sparse_adagrad.cc`, or TensorFlow ops where it cannot run), for a dense
gradient one pass over the variable and its slot. The one-line change for a Keras user:

    model.compile(fefm_lab.RowSparseAdagrad(0.01), "binary_crossentropy")   # not keras...Adagrad

`RowSparseAdagrad` computes Keras's AdaGrad on the dense gradient (a row's gradient of zero
changes neither its accumulator nor its weights, so skipping untouched rows is the same maths).
Keras 3's own AdaGrad, given a row-sparse gradient, squares each looked-up row before the rows a
batch repeats are summed (the accumulator grows by sum g_i^2, not (sum g_i)^2): another update
wherever a batch looks a row up twice, which at CTR scale is every frequent value. `RowSparseAdam`
is Keras's Adam on dense gradients and *lazy* Adam on row-sparse ones: untouched rows keep their
moments and weights, where Keras's Adam decays every row's moments and moves every row.
Under XLA (`compile(jit_compile=True)`, Keras's default on a GPU) custom ops and tf.unique
cannot run: a row-sparse gradient is summed into a table-sized tensor and the update runs over
the whole table (masked for lazy Adam), with the same results. On other backends than
TensorFlow both are their Keras parent unchanged.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from fefm_lab.training.optimizer import (
    adagrad_dense,
    adagrad_rows,
    adam_coefficients,
    adam_rows,
)

PACKAGE = "fefm_lab"


def _tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"


def _tf_variable(variable: Any) -> tf.Variable:
    return variable.value if isinstance(variable, keras.Variable) else variable


@keras.saving.register_keras_serializable(package=PACKAGE)
class RowSparseAdagrad(keras.optimizers.Adagrad):
    """`keras.optimizers.Adagrad` (same arguments, same maths) with row-sparse updates:

        a_r += g_r^2;   w_r -= lr g_r / sqrt(a_r + epsilon)   for the rows r a batch touched

    (all rows for a dense gradient), a per-row gradient summed over its repeats first.

    Example (one touched row of three; the others keep their weights):

    >>> import numpy as np, keras, tensorflow as tf
    >>> table = keras.Variable(np.ones((3, 1), "float32"))
    >>> optimizer = RowSparseAdagrad(learning_rate=0.1, initial_accumulator_value=0.0)
    >>> optimizer.apply([tf.IndexedSlices(tf.constant([[2.0]]), tf.constant([1]))], [table])
    >>> [round(float(w), 6) for w in table.numpy().ravel()]   # 1 - 0.1 * 2 / sqrt(4)
    [1.0, 0.9, 1.0]
    """

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if not _tensorflow():
            return super().update_step(gradient, variable, learning_rate)
        accumulator = _tf_variable(self._accumulators[self._get_variable_index(variable)])
        variable = _tf_variable(variable)
        lr = tf.cast(learning_rate, variable.dtype)
        epsilon = tf.constant(self.epsilon, variable.dtype)
        if isinstance(gradient, tf.IndexedSlices):
            adagrad_rows(variable, accumulator, gradient, lr, epsilon)
        else:
            adagrad_dense(variable, accumulator, tf.cast(gradient, variable.dtype), lr, epsilon)
        return None


@keras.saving.register_keras_serializable(package=PACKAGE)
class RowSparseAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` on dense gradients; lazy Adam on row-sparse ones: for the rows r
    a batch touched (a row's gradient summed over its repeats first), at step t,

        m_r = b1 m_r + (1 - b1) g_r;   v_r = b2 v_r + (1 - b2) g_r^2;
        w_r -= lr sqrt(1 - b2^t) / (1 - b1^t) m_r / (sqrt(v_r) + epsilon),

    and the other rows unchanged. `amsgrad` is not supported (a ValueError).
    """

    def __init__(self, *args: Any, amsgrad: bool = False, **kwargs: Any) -> None:
        if amsgrad:
            raise ValueError("RowSparseAdam does not support `amsgrad=True`, received True")
        super().__init__(*args, amsgrad=False, **kwargs)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if not _tensorflow() or not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        first = _tf_variable(self._momentums[index])
        second = _tf_variable(self._velocities[index])
        variable = _tf_variable(variable)
        coefficients = adam_coefficients(
            tf.cast(learning_rate, variable.dtype),
            self.iterations + 1,
            variable.dtype,
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
        )
        adam_rows(variable, first, second, gradient, coefficients)
        return None
