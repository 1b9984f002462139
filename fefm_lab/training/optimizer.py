"""AdaGrad and Adam that update only the embedding rows a batch touched.

Keras 3 optimizers densify `tf.IndexedSlices` gradients, so a step costs time proportional to
the table size (39 ms at 20k rows, 320 ms at 2M rows for Adam). Here a row-sparse gradient is
first summed per distinct row, then only those rows of the variable and of its slots change:

    AdaGrad:  a_r += g_r^2;                 w_r -= lr * g_r / sqrt(a_r + eps)
    Adam:     m_r = b1 m_r + (1 - b1) g_r;  v_r = b2 v_r + (1 - b2) g_r^2
              w_r -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m_r / (sqrt(v_r) + eps)

Dense gradients follow the same formulas on every row, which are exactly Keras's own AdaGrad
(initial accumulator 0.1, eps 1e-7) and Adam (b1 0.9, b2 0.999, eps 1e-7). Adam on sparse rows is
the usual "lazy" Adam: untouched rows keep their moments, as in TensorFlow 1's LazyAdam.

Each update runs as one compiled op per variable when the `row_sparse_adagrad` kernel is built
(fefm_lab/kernels/row_sparse_adagrad.cc: for a row-sparse gradient the sum per distinct row and
the update of the rows in one pass, threaded over rows; for a dense one a single pass over the
variable and its slots; same formulas, same order of float operations). Otherwise, and where a
custom op cannot run (an XLA-compiled graph, a variable off the CPU), the same update runs as
TensorFlow ops (row-sparse: unique, unsorted_segment_sum, scatter_add, gather, scatter_sub).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from fefm_lab import kernels

ROW_SPARSE_KERNEL = "row_sparse_adagrad"
ADAGRAD_INITIAL_ACCUMULATOR = 0.1
EPSILON = 1e-7
ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.999


def _tf_variable(variable) -> tf.Variable:
    """The tf.Variable behind a Keras 3 variable (TensorFlow backend)."""
    if isinstance(variable, tf.Variable):
        return variable
    return variable.value


def _sum_rows(gradient: tf.IndexedSlices) -> tuple[tf.Tensor, tf.Tensor]:
    """Distinct row ids and the gradient summed over repeated ids."""
    rows, positions = tf.unique(gradient.indices)
    summed = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(rows)[0])
    return rows, summed


def _dense_sum(gradient: tf.IndexedSlices, variable: tf.Variable) -> tf.Tensor:
    """The row-sparse gradient as a dense tensor of the variable's shape (repeats summed)."""
    return tf.math.unsorted_segment_sum(
        tf.convert_to_tensor(gradient.values, variable.dtype),
        gradient.indices,
        tf.shape(variable, out_type=gradient.indices.dtype)[0],
    )


def fused_ops(variable: tf.Variable):
    """The compiled update ops for `variable`, or None for the TensorFlow-ops path.

    None when the kernel is off (FEFM_LAB_KERNELS=0) or not built, inside an XLA-compiled graph,
    for a variable placed off the CPU (the kernel is CPU-only), or a dtype it was not built for.
    """
    if variable.dtype not in (tf.float32, tf.float64):
        return None
    if variable.device and tf.DeviceSpec.from_string(variable.device).device_type != "CPU":
        return None
    ops = kernels.load(ROW_SPARSE_KERNEL)
    if ops is None or kernels.in_xla_context():
        return None
    return ops


def uses_kernel(device: str = "CPU") -> bool:
    """Whether the updates run the compiled kernel when the model's variables are on `device`."""
    return device == "CPU" and kernels.load(ROW_SPARSE_KERNEL) is not None


def describe_path(kind: str, device: str = "CPU") -> str:
    """One line for the run log: which path the updates of optimizer `kind` take
    when the model's variables are on `device` (`select_device`'s answer)."""
    status = kernels.status(ROW_SPARSE_KERNEL)
    what = f"{kind} updates"
    if kernels.load(ROW_SPARSE_KERNEL) is None:
        return f"{what}: TensorFlow ops ({status})"
    if device != "CPU":
        return f"{what}: TensorFlow ops (the kernel is CPU-only, the variables are on {device})"
    return f"{what}: fused C++ kernel ({status})"


def adam_coefficients(
    learning_rate, step, dtype, beta_1=ADAM_BETA_1, beta_2=ADAM_BETA_2, epsilon=EPSILON
) -> dict:
    """The Adam update's scalars in `dtype` at step t = `step` (counting from 1), rounded as the
    ops path rounds them, so the kernel and the ops give the same numbers."""
    t = tf.cast(step, dtype)
    rate = tf.cast(learning_rate, dtype) * tf.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)

    def constant(value):
        return tf.constant(value, dtype)

    return {
        "rate": rate,
        "beta1": constant(beta_1),
        "one_minus_beta1": constant(1.0 - beta_1),
        "beta2": constant(beta_2),
        "one_minus_beta2": constant(1.0 - beta_2),
        "epsilon": constant(epsilon),
    }


def adagrad_dense(variable, accumulator, grad, lr, epsilon) -> None:
    """a += g^2; w -= lr g / sqrt(a + eps) on every row (the scalars in the variable's dtype)."""
    fused = fused_ops(variable)
    if fused is not None:
        fused.fefm_lab_dense_adagrad(
            var=variable.handle,
            accum=accumulator.handle,
            lr=lr,
            epsilon=epsilon,
            grad=tf.cast(grad, variable.dtype),
        )
        return
    accumulator.assign_add(tf.square(grad))
    variable.assign_sub(lr * grad / tf.sqrt(accumulator + epsilon))


def adagrad_rows(variable, accumulator, gradient: tf.IndexedSlices, lr, epsilon) -> None:
    """`adagrad_dense` on the rows of a row-sparse gradient only, repeated rows summed first."""
    fused = fused_ops(variable)
    if fused is not None:
        fused.fefm_lab_row_sparse_adagrad(
            var=variable.handle,
            accum=accumulator.handle,
            lr=lr,
            epsilon=epsilon,
            values=tf.convert_to_tensor(gradient.values, variable.dtype),
            indices=gradient.indices,
        )
        return
    if kernels.in_xla_context():  # XLA has no tf.unique: the summed gradient over the whole table
        adagrad_dense(variable, accumulator, _dense_sum(gradient, variable), lr, epsilon)
        return
    rows, grad = _sum_rows(gradient)
    accumulator.scatter_add(tf.IndexedSlices(tf.square(grad), rows))
    accumulated = tf.gather(accumulator, rows)
    variable.scatter_sub(tf.IndexedSlices(lr * grad / tf.sqrt(accumulated + epsilon), rows))


def adam_dense(variable, first, second, grad, coefficients: dict) -> None:
    """m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; w -= rate m / (sqrt(v) + eps), every row.

    `coefficients`: rate, beta1, one_minus_beta1, beta2, one_minus_beta2, epsilon (scalars in
    the variable's dtype; rate = lr sqrt(1 - b2^t) / (1 - b1^t))."""
    fused = fused_ops(variable)
    if fused is not None:
        fused.fefm_lab_dense_adam(
            var=variable.handle,
            m=first.handle,
            v=second.handle,
            **coefficients,
            grad=tf.cast(grad, variable.dtype),
        )
        return
    c = coefficients
    first.assign(c["beta1"] * first + c["one_minus_beta1"] * grad)
    second.assign(c["beta2"] * second + c["one_minus_beta2"] * tf.square(grad))
    variable.assign_sub(c["rate"] * first / (tf.sqrt(second) + c["epsilon"]))


def adam_rows(variable, first, second, gradient: tf.IndexedSlices, coefficients: dict) -> None:
    """`adam_dense` on the rows of a row-sparse gradient only (lazy Adam: untouched rows keep
    their moments), repeated rows summed first."""
    fused = fused_ops(variable)
    if fused is not None:
        fused.fefm_lab_row_sparse_adam(
            var=variable.handle,
            m=first.handle,
            v=second.handle,
            **coefficients,
            values=tf.convert_to_tensor(gradient.values, variable.dtype),
            indices=gradient.indices,
        )
        return
    c = coefficients
    if kernels.in_xla_context():  # XLA has no tf.unique: masked updates over the whole table
        grad = _dense_sum(gradient, variable)
        touched = (
            _dense_sum(tf.IndexedSlices(tf.ones_like(gradient.values), gradient.indices), variable)
            > 0
        )
        first.assign(tf.where(touched, c["beta1"] * first + c["one_minus_beta1"] * grad, first))
        second.assign(
            tf.where(touched, c["beta2"] * second + c["one_minus_beta2"] * tf.square(grad), second)
        )
        delta = c["rate"] * first / (tf.sqrt(second) + c["epsilon"])
        variable.assign_sub(tf.where(touched, delta, tf.zeros_like(delta)))
        return
    rows, grad = _sum_rows(gradient)
    new_first = c["beta1"] * tf.gather(first, rows) + c["one_minus_beta1"] * grad
    new_second = c["beta2"] * tf.gather(second, rows) + c["one_minus_beta2"] * tf.square(grad)
    first.scatter_update(tf.IndexedSlices(new_first, rows))
    second.scatter_update(tf.IndexedSlices(new_second, rows))
    delta = c["rate"] * new_first / (tf.sqrt(new_second) + c["epsilon"])
    variable.scatter_sub(tf.IndexedSlices(delta, rows))


class RowSparseOptimizer:
    """AdaGrad or Adam over a fixed list of variables, row-sparse where the gradient is."""

    def __init__(self, kind: str, learning_rate: float, variables: Sequence) -> None:
        if kind not in ("adagrad", "adam"):
            raise ValueError(f"optimizer must be 'adagrad' or 'adam', received {kind!r}")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, received {learning_rate!r}")
        self.kind = kind
        self.learning_rate = float(learning_rate)
        self.variables = [_tf_variable(v) for v in variables]
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        if kind == "adagrad":
            self._slots = [
                (
                    tf.Variable(
                        tf.fill(tf.shape(v), tf.constant(ADAGRAD_INITIAL_ACCUMULATOR, v.dtype)),
                        trainable=False,
                    ),
                )
                for v in self.variables
            ]
        else:
            self._slots = [
                (
                    tf.Variable(tf.zeros_like(v), trainable=False),
                    tf.Variable(tf.zeros_like(v), trainable=False),
                )
                for v in self.variables
            ]

    @property
    def state_variables(self) -> list[tf.Variable]:
        """The step counter then every slot, in a fixed order (what a checkpoint saves)."""
        return [self.iterations, *(slot for slots in self._slots for slot in slots)]

    def apply(self, gradients: Sequence) -> None:
        """One update of every variable from its gradient (None = no update)."""
        if len(gradients) != len(self.variables):
            raise ValueError(f"expected {len(self.variables)} gradients, received {len(gradients)}")
        step = self.iterations.assign_add(1)
        for variable, slots, gradient in zip(self.variables, self._slots, gradients, strict=True):
            if gradient is None:
                continue
            rows = isinstance(gradient, tf.IndexedSlices)
            if not rows:
                gradient = tf.convert_to_tensor(gradient)
            if self.kind == "adagrad":
                lr, epsilon = (
                    tf.constant(x, variable.dtype) for x in (self.learning_rate, EPSILON)
                )
                update = adagrad_rows if rows else adagrad_dense
                update(variable, slots[0], gradient, lr, epsilon)
            else:
                update = adam_rows if rows else adam_dense
                update(
                    variable,
                    *slots,
                    gradient,
                    adam_coefficients(self.learning_rate, step, variable.dtype),
                )
