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


def _in_xla_context() -> bool:
    """Whether the graph being traced is XLA-compiled, where custom ops cannot run."""
    from fefm_lab.layers import _in_xla_context

    return _in_xla_context()


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
    if ops is None or _in_xla_context():
        return None
    return ops


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
            if isinstance(gradient, tf.IndexedSlices):
                self._update_rows(variable, slots, gradient, step)
            else:
                self._update_dense(variable, slots, tf.convert_to_tensor(gradient), step)

    def _adam_rate(self, step: tf.Tensor, dtype) -> tf.Tensor:
        t = tf.cast(step, dtype)
        return self.learning_rate * tf.sqrt(1.0 - ADAM_BETA_2**t) / (1.0 - ADAM_BETA_1**t)

    def _update_dense(self, variable, slots, grad, step) -> None:
        fused = fused_ops(variable)
        if fused is not None:
            self._update_dense_fused(fused, variable, slots, grad, step)
            return
        if self.kind == "adagrad":
            (accumulator,) = slots
            accumulator.assign_add(tf.square(grad))
            variable.assign_sub(self.learning_rate * grad / tf.sqrt(accumulator + EPSILON))
            return
        first, second = slots
        first.assign(ADAM_BETA_1 * first + (1.0 - ADAM_BETA_1) * grad)
        second.assign(ADAM_BETA_2 * second + (1.0 - ADAM_BETA_2) * tf.square(grad))
        rate = self._adam_rate(step, variable.dtype)
        variable.assign_sub(rate * first / (tf.sqrt(second) + EPSILON))

    def _update_rows(self, variable, slots, gradient: tf.IndexedSlices, step) -> None:
        fused = fused_ops(variable)
        if fused is not None:
            self._update_rows_fused(fused, variable, slots, gradient, step)
            return
        rows, grad = _sum_rows(gradient)
        if self.kind == "adagrad":
            (accumulator,) = slots
            accumulator.scatter_add(tf.IndexedSlices(tf.square(grad), rows))
            accumulated = tf.gather(accumulator, rows)
            delta = self.learning_rate * grad / tf.sqrt(accumulated + EPSILON)
            variable.scatter_sub(tf.IndexedSlices(delta, rows))
            return
        first, second = slots
        new_first = ADAM_BETA_1 * tf.gather(first, rows) + (1.0 - ADAM_BETA_1) * grad
        new_second = ADAM_BETA_2 * tf.gather(second, rows) + (1.0 - ADAM_BETA_2) * tf.square(grad)
        first.scatter_update(tf.IndexedSlices(new_first, rows))
        second.scatter_update(tf.IndexedSlices(new_second, rows))
        rate = self._adam_rate(step, variable.dtype)
        delta = rate * new_first / (tf.sqrt(new_second) + EPSILON)
        variable.scatter_sub(tf.IndexedSlices(delta, rows))

    def _coefficients(self, step, dtype) -> dict:
        """The fused ops' scalars, rounded to the variable's dtype as the ops path rounds them,
        so both give the same numbers."""

        def constant(value):
            return tf.constant(value, dtype)

        if self.kind == "adagrad":
            return {"lr": constant(self.learning_rate), "epsilon": constant(EPSILON)}
        return {
            "rate": self._adam_rate(step, dtype),
            "beta1": constant(ADAM_BETA_1),
            "one_minus_beta1": constant(1.0 - ADAM_BETA_1),
            "beta2": constant(ADAM_BETA_2),
            "one_minus_beta2": constant(1.0 - ADAM_BETA_2),
            "epsilon": constant(EPSILON),
        }

    def _slot_handles(self, slots) -> dict:
        if self.kind == "adagrad":
            return {"accum": slots[0].handle}
        return {"m": slots[0].handle, "v": slots[1].handle}

    def _update_rows_fused(self, fused, variable, slots, gradient: tf.IndexedSlices, step) -> None:
        """`_update_rows` as one compiled op (sum per row and update, one pass)."""
        op = (
            fused.fefm_lab_row_sparse_adagrad
            if self.kind == "adagrad"
            else fused.fefm_lab_row_sparse_adam
        )
        op(
            var=variable.handle,
            **self._slot_handles(slots),
            **self._coefficients(step, variable.dtype),
            values=tf.convert_to_tensor(gradient.values, variable.dtype),
            indices=gradient.indices,
        )

    def _update_dense_fused(self, fused, variable, slots, grad, step) -> None:
        """`_update_dense` as one compiled op: one pass over the variable and its slots."""
        op = fused.fefm_lab_dense_adagrad if self.kind == "adagrad" else fused.fefm_lab_dense_adam
        op(
            var=variable.handle,
            **self._slot_handles(slots),
            **self._coefficients(step, variable.dtype),
            grad=tf.cast(grad, variable.dtype),
        )
