"""Keras 3 layers for DeepFEFM and its comparison models.

Every layer uses `keras.ops` (the exceptions, `gather_rows` and FEFM's TensorFlow gradient,
say why), precomputes its index tables in Python (no Python loop over field pairs inside the
graph), checks its constructor arguments eagerly and is registered as serializable, so a model
saved to `.keras` reloads in safe mode. The examples in the docstrings run as tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from fefm_lab.config.schema import L2_MODES
from fefm_lab.kernels import in_xla_context

PACKAGE = "fefm_lab"
TASKS = ("binary", "regression")


def check_number(name: str, value: Any, low: float, high: float | None = None) -> float:
    """`value` as a float, if it is a number in [low, high) (or >= low); else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"`{name}` must be a number, received {value!r}")
    if not value >= low or (high is not None and not value < high):  # NaN fails both
        bound = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"`{name}` must be {bound}, received {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """`value`, if it is one of `choices`; else a ValueError quoting both."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}, received {value!r}")
    return value


def _check_seed(value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"`seed` must be an int or None, received {value!r}")
    return value


def _check_int_list(name: str, values: Any, low: int, *, allow_empty: bool = False) -> list[int]:
    if not isinstance(values, list | tuple) or (not values and not allow_empty):
        raise ValueError(f"`{name}` must be a non-empty list of ints >= {low}, received {values!r}")
    if any(isinstance(v, bool) or not isinstance(v, int) or v < low for v in values):
        raise ValueError(f"`{name}` must be a non-empty list of ints >= {low}, received {values!r}")
    return list(values)


def pair_indices(num_fields: int) -> tuple[np.ndarray, np.ndarray]:
    """The field pairs (i < j) in lexicographic order: (0,1), (0,2), ..., (n-2, n-1)."""
    left, right = np.triu_indices(num_fields, k=1)
    return left.astype("int32"), right.astype("int32")


def gather_rows(table: keras.Variable, rows: Any) -> Any:
    """`table[rows]`, reading only those rows of the variable.

    `ops.take` first reads the whole table into a tensor. On TensorFlow that read stays alive
    through the step, so the optimizer's in-place update of a few rows must copy the whole table
    (copy-on-write): 57 ms vs 273 ms a step at 10k vs 1M rows per table. Gathering from the
    variable itself (ResourceGather) reads only the rows, and its gradient is `tf.IndexedSlices`.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.gather(table.value, rows)
    return ops.take(table, rows, axis=0)


def _pair_count(input_shape: Sequence[int | None], layer: str) -> int:
    """n(n-1)/2 for a (batch, n, k) input; a ValueError unless n >= 2 and k are known."""
    if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
        raise ValueError(
            f"{layer} expects input of shape (batch, fields, k), received {tuple(input_shape)!r}"
        )
    n = int(input_shape[1])
    if n < 2:
        raise ValueError(f"{layer} needs at least 2 fields to form a pair, received {n}")
    return n * (n - 1) // 2


class _ConfiguredLayer(keras.layers.Layer):
    """A layer whose config is its constructor arguments, kept as attributes of the same names."""

    config_keys: tuple[str, ...] = ()

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **{key: getattr(self, key) for key in self.config_keys}}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FEFMInteraction(_ConfiguredLayer):
    """Field-embedded factorisation machine interactions: one scalar per field pair.

    For field embeddings v_0..v_{n-1} in R^k and the P = n(n-1)/2 pairs p = (i < j) in
    lexicographic order, the layer returns

        r_p = v_i^T W_p v_j,   W_p = U_p + U_p^T  (symmetric=True)   or   W_p = U_p  (FmFM),

    with one trainable tensor U of shape (P, k, k), initialised truncated-normal with stddev 1.
    All pairs are one batched contraction: gather v_i and v_j per pair into (P, B, k), one
    batched matmul (P, B, k) x (P, k, k), then multiply by v_j and sum over k. On TensorFlow
    the backward pass is written out (`_fefm_scores_tensorflow`): 7-11% less CPU per step; and
    outside XLA a fused C++ kernel computes both without the (P, B, k) tensors when it is built
    (`make setup`) and not turned off (`FEFM_LAB_KERNELS=0`).

    Args:
        symmetric: use W_p = U_p + U_p^T (FEFM). False gives unconstrained matrices (FmFM).
        l2_reg: L2 strength on U (lambda * sum of squares of U, not of U + U^T).
        seed: seed of the initialiser of U.

    Input shape: (batch, n, k) with n >= 2. Output shape: (batch, P).

    Example (n = 3 fields, k = 2; W_0 = 2 I, so r_0 = 2 <v_0, v_1> = 2 * 11 = 22):

    >>> import numpy as np
    >>> layer = FEFMInteraction(seed=7)
    >>> v = np.array([[[1.0, 2.0], [3.0, 4.0], [0.0, 1.0]]], "float32")
    >>> layer.build(v.shape)
    >>> _ = layer.field_matrices.assign(np.stack([np.eye(2)] * 3).astype("float32"))
    >>> np.asarray(layer(v)).tolist()
    [[22.0, 4.0, 8.0]]

    Reference: H. Pande, "Field-Embedded Factorization Machines for Click-through Rate
    Prediction", arXiv:2009.09931, Sec. 3; FmFM: Y. Sun et al., "FM^2: Field-matrixed
    Factorization Machines for Recommender Systems", WWW 2021.
    """

    config_keys = ("symmetric", "l2_reg", "seed")

    def __init__(
        self,
        symmetric: bool = True,
        l2_reg: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(symmetric, bool):
            raise ValueError(f"`symmetric` must be a bool, received {symmetric!r}")
        self.symmetric = symmetric
        self.l2_reg = check_number("l2_reg", l2_reg, 0.0)
        self.seed = _check_seed(seed)

    def build(self, input_shape: Sequence[int | None]) -> None:
        pairs = _pair_count(input_shape, "FEFMInteraction")
        dim = int(input_shape[2])
        self.left, self.right = pair_indices(int(input_shape[1]))
        self.field_matrices = self.add_weight(
            name="field_matrices",
            shape=(pairs, dim, dim),
            initializer=keras.initializers.TruncatedNormal(stddev=1.0, seed=self.seed),
            regularizer=keras.regularizers.L2(self.l2_reg) if self.l2_reg > 0 else None,
        )

    def pair_matrices(self) -> Any:
        """W, shape (P, k, k): U + U^T when symmetric, else U."""
        u = self.field_matrices
        return u + ops.transpose(u, (0, 2, 1)) if self.symmetric else ops.convert_to_tensor(u)

    def call(self, inputs: Any) -> Any:
        if keras.backend.backend() == "tensorflow":
            return _fefm_scores_tensorflow(inputs, self.pair_matrices(), self.left, self.right)
        by_field = ops.transpose(inputs, (1, 0, 2))  # (n, B, k): pair gathers copy whole rows
        v_left = ops.take(by_field, self.left, axis=0)  # (P, B, k)
        v_right = ops.take(by_field, self.right, axis=0)
        projected = ops.matmul(v_left, self.pair_matrices())  # (P, B, k)
        return ops.transpose(ops.sum(projected * v_right, axis=-1))  # (B, P)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, int]:
        return (input_shape[0], _pair_count(input_shape, "FEFMInteraction"))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FEFMInteraction:
        # Models saved while a second, field-grouped formulation existed name an
        # `implementation`; both computed the same r, so the key is dropped.
        return cls(**{k: v for k, v in config.items() if k != "implementation"})


def _on_cpu(*tensors: Any) -> bool:
    """Whether ops on these tensors run on the CPU: their placed or requested device, or, when
    none is set, TensorFlow's default (a visible GPU takes the ops). The fused FEFM kernel is CPU
    only; on a GPU it would copy v and W to the host and back every step."""
    import tensorflow as tf

    devices = [tensor.device for tensor in tensors if tensor.device]
    if devices:
        return all(tf.DeviceSpec.from_string(d).device_type == "CPU" for d in devices)
    return not tf.config.get_visible_devices("GPU")


def _fefm_scores_tensorflow(
    inputs: Any, pair_matrices: Any, left: np.ndarray, right: np.ndarray
) -> Any:
    """The FEFM scores r_p = v_i^T W_p v_j on TensorFlow, with a hand-written gradient.

    The forward pass is the pair-batched contraction of `FEFMInteraction.call`. Autodiff's
    backward pass scatters the gradients of the two (P, B, k) pair gathers through IndexedSlices
    (a concatenation and one large unsorted segment sum) and recomputes broadcasts; this one keeps
    s_p = v_i W_p from the forward pass and, with g_p = dL/dr_p, returns

        dL/dv_i = sum_{p = (i, j)} g_p W_p v_j  (one batched matmul, then a sum per left field),
        dL/dv_j = sum_{p = (i, j)} g_p s_p      (a sum per right field),
        dL/dW_p = sum_b g_bp v_i v_j^T          (one batched matmul).

    Same maths as autodiff; only the order of the float additions differs.

    Where the fused C++ kernel is built and on (`fefm_lab.kernels`, `FEFM_LAB_KERNELS`), the
    dtype is float32/float64, the ops run on the CPU and the graph is not XLA-compiled (the op
    has neither a GPU nor an XLA version), the scores and this gradient come from it instead
    (`fefm_lab/kernels/fefm_interaction.cc`): the same maths without the (P, B, k) tensors.
    """
    import tensorflow as tf

    from fefm_lab.kernels.fefm_interaction import DTYPES, scores_op

    v, w = tf.convert_to_tensor(inputs), tf.convert_to_tensor(pair_matrices)
    fused = scores_op()
    same_dtype = v.dtype.name in DTYPES and w.dtype == v.dtype
    if fused is not None and same_dtype and _on_cpu(v, w) and not in_xla_context():
        return fused(v, w, left=left.tolist(), right=right.tolist())

    by_right = np.argsort(right, kind="stable").astype("int32")
    fields = int(right.max()) + 1

    @tf.custom_gradient
    def scores(v: tf.Tensor, w: tf.Tensor) -> tuple[tf.Tensor, Any]:
        by_field = tf.transpose(v, (1, 0, 2))  # (n, B, k)
        v_left = tf.gather(by_field, left)  # (P, B, k)
        v_right = tf.gather(by_field, right)
        projected = tf.matmul(v_left, w)  # s_p = v_i W_p, (P, B, k)
        result = tf.transpose(tf.reduce_sum(projected * v_right, axis=-1))  # (B, P)

        def gradient(upstream: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            g = tf.transpose(upstream)[:, :, None]  # (P, B, 1)
            g_right = g * v_right
            d_left = tf.matmul(g_right, w, transpose_b=True)  # g_p W_p v_j, as rows
            d_right = g * projected
            d_w = tf.matmul(v_left, g_right, transpose_a=True)  # (P, k, k)
            if in_xla_context():  # XLA has no SegmentSum kernel
                by_field = tf.math.unsorted_segment_sum(d_left, left, fields)
                by_field += tf.math.unsorted_segment_sum(d_right, right, fields)
                return tf.transpose(by_field, (1, 0, 2)), d_w
            # Sorted segment sums (threaded, 3x less CPU than unsorted ones): pairs come sorted
            # by left field; right fields are sorted by one gather. Field n-1 is never a left one.
            from_left = tf.pad(tf.math.segment_sum(d_left, left), [[0, 1], [0, 0], [0, 0]])
            from_right = tf.math.segment_sum(tf.gather(d_right, by_right), right[by_right])
            return tf.transpose(from_left + from_right, (1, 0, 2)), d_w

        return result, gradient

    # Read W outside: a variable read inside would need the `variables` form of the gradient.
    return scores(v, w)


def _offsets(vocabulary_sizes: Sequence[int]) -> np.ndarray:
    """Row offset of each column inside a table that stacks all columns' rows."""
    return np.concatenate([[0], np.cumsum(vocabulary_sizes)[:-1]]).astype("int32")


def _stack_ids(ids: Any) -> Any:
    """A list of (B, 1) id tensors, or one (B, n) tensor, as one (B, n) int32 tensor."""
    if isinstance(ids, list | tuple):
        ids = ops.concatenate([ops.cast(column, "int32") for column in ids], axis=1)
    return ops.cast(ids, "int32")


def _batch_l2(l2_reg: float, looked_up: Any, axes: tuple[int, ...]) -> Any:
    """lambda * (1/B) * sum over examples of the squares of the rows each one looked up."""
    return l2_reg * ops.mean(ops.sum(ops.square(looked_up), axis=axes))


@keras.saving.register_keras_serializable(package=PACKAGE)
class FieldEmbedding(_ConfiguredLayer):
    """Embeds n categorical columns from ONE shared table with per-column row offsets.

    Column c's id x maps to row offset_c + x of a (sum of vocabularies, k) table
    (offset_c = sum of the vocabularies before c), so all columns are looked up in one gather:
    out[b, c, :] = T[offset_c + x_bc, :]. The gather reads the variable itself, so its gradient
    is a `tf.IndexedSlices` over the looked-up rows (sparse row updates stay cheap at 1M rows).

    L2, `l2_mode="table"`: lambda * sum of squares of the whole table (the reference).
    `l2_mode="batch"`: lambda * (1/B) * sum over the batch's examples of the squared norms of the
    rows each example looks up: the per-example penalty on the active parameters, as in SGD for
    factorisation machines. Only looked-up rows receive a gradient from it.

    Args:
        vocabulary_sizes: rows of each column, in input order (ints >= 1).
        embedding_dim: k >= 1.
        l2_reg: lambda >= 0.
        l2_mode: `"table"` or `"batch"`.
        stddev: initial rows are N(0, stddev^2); 0 gives zeros.
        seed: seed of the initialiser.

    Input: a list of n (batch, 1) int tensors or one (batch, n) int tensor.
    Output: (batch, n, k).

    Example (column 1's id 0 is row 2 of the table, after column 0's two rows):

    >>> import numpy as np
    >>> layer = FieldEmbedding([2, 3], embedding_dim=1)
    >>> layer.build(None)
    >>> _ = layer.table.assign(np.array([[10.0], [11.0], [20.0], [21.0], [22.0]], "float32"))
    >>> np.asarray(layer([np.array([[1]]), np.array([[0]])])).tolist()
    [[[11.0], [20.0]]]

    Reference: the feature embeddings v_i of H. Pande, arXiv:2009.09931, Sec. 3; L2 on active
    rows as in S. Rendle, "Factorization Machines with libFM", ACM TIST 2012, Sec. 4.1.
    """

    config_keys = ("vocabulary_sizes", "embedding_dim", "l2_reg", "l2_mode", "stddev", "seed")

    def __init__(
        self,
        vocabulary_sizes: Sequence[int],
        embedding_dim: int,
        l2_reg: float = 0.0,
        l2_mode: str = "batch",
        stddev: float = 1e-4,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vocabulary_sizes = _check_int_list("vocabulary_sizes", vocabulary_sizes, 1)
        if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int):
            raise ValueError(f"`embedding_dim` must be an int >= 1, received {embedding_dim!r}")
        if embedding_dim < 1:
            raise ValueError(f"`embedding_dim` must be an int >= 1, received {embedding_dim!r}")
        self.embedding_dim = embedding_dim
        self.l2_reg = check_number("l2_reg", l2_reg, 0.0)
        self.l2_mode = check_choice("l2_mode", l2_mode, L2_MODES)
        self.stddev = check_number("stddev", stddev, 0.0)
        self.seed = _check_seed(seed)
        self.offsets = _offsets(self.vocabulary_sizes)

    def build(self, input_shape: Any) -> None:
        initializer = (
            keras.initializers.RandomNormal(stddev=self.stddev, seed=self.seed)
            if self.stddev > 0
            else keras.initializers.Zeros()
        )
        table_l2 = self.l2_mode == "table" and self.l2_reg > 0
        self.table = self.add_weight(
            name="table",
            shape=(sum(self.vocabulary_sizes), self.embedding_dim),
            initializer=initializer,
            regularizer=keras.regularizers.L2(self.l2_reg) if table_l2 else None,
        )

    def call(self, ids: Any) -> Any:
        rows = _stack_ids(ids) + self.offsets
        embedded = gather_rows(self.table, rows)  # (B, n, k)
        if self.l2_mode == "batch" and self.l2_reg > 0:
            self.add_loss(_batch_l2(self.l2_reg, embedded, (1, 2)))
        return embedded

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, int, int]:
        batch = input_shape[0][0] if isinstance(input_shape, list) else input_shape[0]
        return (batch, len(self.vocabulary_sizes), self.embedding_dim)


@keras.saving.register_keras_serializable(package=PACKAGE)
class LinearLogit(_ConfiguredLayer):
    """First-order logit: sum_c w_c[x_c] + w_dense^T x_dense, no bias.

    The categorical weights live in one shared 1-d table (zeros at start, offsets per column as
    in `FieldEmbedding`; not shared with the k-d embedding table). The dense kernel starts
    glorot-normal as in the reference. L2 (`l2_reg`) covers both: the table as in
    `FieldEmbedding` (`l2_mode`), the dense kernel always as a whole (every example uses it).

    Args:
        vocabulary_sizes: rows of each categorical column (ints >= 1; may be empty).
        dense_dim: total width of the dense columns (0 for none).
        l2_reg: lambda >= 0.
        l2_mode: `"table"` or `"batch"`.
        seed: seed of the dense kernel's initialiser.

    Input: a list of the categorical (batch, 1) id tensors followed by the dense
    (batch, d_c) tensors. Output: (batch, 1).

    Example (w[1] = 2 for the id, then 0.5 * 2 - 1 * 3 = -2 from the dense values):

    >>> import numpy as np
    >>> layer = LinearLogit([3], dense_dim=2)
    >>> layer.build(None)
    >>> _ = layer.table.assign(np.array([[1.0], [2.0], [3.0]], "float32"))
    >>> _ = layer.dense_kernel.assign(np.array([[0.5], [-1.0]], "float32"))
    >>> np.asarray(layer([np.array([[1]]), np.array([[2.0, 3.0]], "float32")])).tolist()
    [[0.0]]

    Reference: the linear terms of H. Pande, arXiv:2009.09931, Sec. 3 (the first-order part of
    S. Rendle, "Factorization Machines", ICDM 2010).
    """

    config_keys = ("vocabulary_sizes", "dense_dim", "l2_reg", "l2_mode", "seed")

    def __init__(
        self,
        vocabulary_sizes: Sequence[int],
        dense_dim: int = 0,
        l2_reg: float = 0.0,
        l2_mode: str = "batch",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vocabulary_sizes = _check_int_list(
            "vocabulary_sizes", vocabulary_sizes, 1, allow_empty=True
        )
        if isinstance(dense_dim, bool) or not isinstance(dense_dim, int) or dense_dim < 0:
            raise ValueError(f"`dense_dim` must be an int >= 0, received {dense_dim!r}")
        if not self.vocabulary_sizes and dense_dim == 0:
            raise ValueError(
                "LinearLogit needs at least one categorical or dense column, received "
                f"vocabulary_sizes={self.vocabulary_sizes!r} and dense_dim={dense_dim!r}"
            )
        self.dense_dim = dense_dim
        self.l2_reg = check_number("l2_reg", l2_reg, 0.0)
        self.l2_mode = check_choice("l2_mode", l2_mode, L2_MODES)
        self.seed = _check_seed(seed)
        self.offsets = _offsets(self.vocabulary_sizes) if self.vocabulary_sizes else None

    def build(self, input_shape: Any) -> None:
        regularizer = keras.regularizers.L2(self.l2_reg) if self.l2_reg > 0 else None
        if self.vocabulary_sizes:
            self.table = self.add_weight(
                name="table",
                shape=(sum(self.vocabulary_sizes), 1),
                initializer="zeros",
                regularizer=regularizer if self.l2_mode == "table" else None,
            )
        if self.dense_dim:
            self.dense_kernel = self.add_weight(
                name="dense_kernel",
                shape=(self.dense_dim, 1),
                initializer=keras.initializers.GlorotNormal(seed=self.seed),
                regularizer=regularizer,
            )

    def call(self, inputs: list[Any]) -> Any:
        num_sparse = len(self.vocabulary_sizes)
        logit = 0.0
        if num_sparse:
            rows = _stack_ids(list(inputs[:num_sparse])) + self.offsets
            weights = gather_rows(self.table, rows)[..., 0]  # (B, n)
            if self.l2_mode == "batch" and self.l2_reg > 0:
                self.add_loss(_batch_l2(self.l2_reg, weights, (1,)))
            logit = ops.sum(weights, axis=1, keepdims=True)
        if self.dense_dim:
            dense = ops.concatenate(
                [ops.cast(x, self.compute_dtype) for x in inputs[num_sparse:]], 1
            )
            logit = logit + ops.matmul(dense, self.dense_kernel)
        return logit

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, int]:
        return (input_shape[0][0], 1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SelectFields(_ConfiguredLayer):
    """Keeps the given fields of a (batch, n, k) tensor, in the given order.

    out[b, m, :] = x[b, indices[m], :], shape (batch, len(indices), k): the fields of `fm_group`
    taken out of a table that embeds more columns (e.g. all the DNN's).

    Args:
        indices: field positions (ints >= 0), in output order.

    Example:

    >>> import numpy as np
    >>> x = np.arange(6, dtype="float32").reshape(1, 3, 2)
    >>> np.asarray(SelectFields([2, 0])(x)).tolist()
    [[[4.0, 5.0], [0.0, 1.0]]]

    Reference: `fm_group` of H. Pande, arXiv:2009.09931 (DeepCTR's DeepFEFM documents it).
    """

    config_keys = ("indices",)

    def __init__(self, indices: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.indices = _check_int_list("indices", indices, 0)

    def call(self, inputs: Any) -> Any:
        return ops.take(inputs, np.asarray(self.indices, "int32"), axis=1)

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        return (input_shape[0], len(self.indices), *input_shape[2:])


@keras.saving.register_keras_serializable(package=PACKAGE)
class FMInteraction(keras.layers.Layer):
    """Factorisation machine second-order logit: sum_{i<j} <v_i, v_j>.

    Computed in O(n k) as 1/2 sum_k ((sum_i v_ik)^2 - sum_i v_ik^2). No arguments, no weights.
    Input (batch, n, k), output (batch, 1).

    Example (<v_0, v_1> + <v_0, v_2> + <v_1, v_2> = 11 + 2 + 4):

    >>> import numpy as np
    >>> v = np.array([[[1.0, 2.0], [3.0, 4.0], [0.0, 1.0]]], "float32")
    >>> np.asarray(FMInteraction()(v)).tolist()
    [[17.0]]

    Reference: S. Rendle, "Factorization Machines", ICDM 2010, Lemma 3.1.
    """

    def call(self, inputs: Any) -> Any:
        square_of_sum = ops.square(ops.sum(inputs, axis=1))
        sum_of_squares = ops.sum(ops.square(inputs), axis=1)
        return 0.5 * ops.sum(square_of_sum - sum_of_squares, axis=1, keepdims=True)

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, int]:
        return (input_shape[0], 1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FwFMInteraction(_ConfiguredLayer):
    """Field-weighted FM second-order logit: sum_{p=(i<j)} w_p <v_i, v_j>.

    One scalar w_p per field pair (lexicographic order), truncated-normal with stddev 1 at start.

    Args:
        l2_reg: L2 strength on w (>= 0).
        seed: seed of w's initialiser.

    Input (batch, n, k) with n >= 2, output (batch, 1).

    Example (w = (1, 0, 2): 1 * 11 + 0 * 2 + 2 * 4 = 19):

    >>> import numpy as np
    >>> layer = FwFMInteraction(seed=3)
    >>> v = np.array([[[1.0, 2.0], [3.0, 4.0], [0.0, 1.0]]], "float32")
    >>> layer.build(v.shape)
    >>> _ = layer.pair_weights.assign(np.array([1.0, 0.0, 2.0], "float32"))
    >>> np.asarray(layer(v)).tolist()
    [[19.0]]

    Reference: J. Pan et al., "Field-weighted Factorization Machines for Click-Through Rate
    Prediction in Display Advertising", WWW 2018.
    """

    config_keys = ("l2_reg", "seed")

    def __init__(self, l2_reg: float = 0.0, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.l2_reg = check_number("l2_reg", l2_reg, 0.0)
        self.seed = _check_seed(seed)

    def build(self, input_shape: Sequence[int | None]) -> None:
        pairs = _pair_count(input_shape, "FwFMInteraction")
        self.left, self.right = pair_indices(int(input_shape[1]))
        self.pair_weights = self.add_weight(
            name="pair_weights",
            shape=(pairs,),
            initializer=keras.initializers.TruncatedNormal(stddev=1.0, seed=self.seed),
            regularizer=keras.regularizers.L2(self.l2_reg) if self.l2_reg > 0 else None,
        )

    def call(self, inputs: Any) -> Any:
        dots = ops.sum(
            ops.take(inputs, self.left, axis=1) * ops.take(inputs, self.right, axis=1), axis=-1
        )  # (B, P)
        return ops.sum(dots * self.pair_weights, axis=1, keepdims=True)

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, int]:
        return (input_shape[0], 1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class CrossNetV2(_ConfiguredLayer):
    """DCN-V2's cross network: L full-rank cross layers over one input vector x_0 in R^d,

        x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l,   l = 0 .. L-1,   output x_L,

    each W_l a full d x d matrix (the paper's "DCN-V2", not its low-rank or mixture variants),
    b_l a bias. Row vectors here: the stored `kernel_l` is W_l^T (x_l W_l^T = (W_l x_l)^T).
    Kernels start Glorot-uniform, biases at zero (as the paper's code).

    Args:
        num_layers: L >= 1.
        l2_reg: L2 strength on the kernels (>= 0).
        seed: seed of the kernels' initialisers (layer l uses seed + l).

    Input (batch, d), output (batch, d).

    Example (d = 2, one layer, W = identity, b = (1, 0): x_0 ⊙ (x_0 + b) + x_0):

    >>> import numpy as np
    >>> layer = CrossNetV2(num_layers=1, seed=0)
    >>> x0 = np.array([[1.0, 2.0]], "float32")
    >>> layer.build(x0.shape)
    >>> _ = layer.kernels[0].assign(np.eye(2, dtype="float32"))
    >>> _ = layer.biases[0].assign(np.array([1.0, 0.0], "float32"))
    >>> np.asarray(layer(x0)).tolist()
    [[3.0, 6.0]]

    Reference: R. Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for
    Web-scale Learning to Rank Systems", WWW 2021, Eq. (1).
    """

    config_keys = ("num_layers", "l2_reg", "seed")

    def __init__(
        self, num_layers: int, l2_reg: float = 0.0, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"`num_layers` must be an int >= 1, received {num_layers!r}")
        self.num_layers = num_layers
        self.l2_reg = check_number("l2_reg", l2_reg, 0.0)
        self.seed = _check_seed(seed)

    def build(self, input_shape: Sequence[int | None]) -> None:
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                f"CrossNetV2 expects input of shape (batch, d), received {tuple(input_shape)!r}"
            )
        d = int(input_shape[-1])
        regularizer = keras.regularizers.L2(self.l2_reg) if self.l2_reg > 0 else None
        self.kernels = [
            self.add_weight(
                name=f"kernel_{i}",
                shape=(d, d),
                initializer=keras.initializers.GlorotUniform(
                    seed=None if self.seed is None else self.seed + i
                ),
                regularizer=regularizer,
            )
            for i in range(self.num_layers)
        ]
        self.biases = [
            self.add_weight(name=f"bias_{i}", shape=(d,), initializer="zeros")
            for i in range(self.num_layers)
        ]

    def call(self, inputs: Any) -> Any:
        x = inputs
        for kernel, bias in zip(self.kernels, self.biases, strict=True):  # L layers, not pairs
            x = inputs * (ops.matmul(x, kernel) + bias) + x
        return x

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SumLogits(_ConfiguredLayer):
    """Prediction head: y = sigmoid(b + sum of every input's entries), or without the sigmoid.

    Each input is (batch, m): a (batch, 1) logit, or the (batch, P) FEFM pair scores whose sum
    is the FEFM logit. One trainable bias b, zero at start.

    Args:
        task: `"binary"` (a probability, the sigmoid) or `"regression"` (the unbounded sum).

    Example (b = 0: 2 + (0.5 - 0.5) = 2):

    >>> import numpy as np
    >>> head = SumLogits("regression")
    >>> np.asarray(head([np.array([[2.0]]), np.array([[0.5, -0.5]])])).tolist()
    [[2.0]]

    Reference: the output of H. Pande, arXiv:2009.09931, Sec. 3 (sigmoid of the summed logits).
    """

    config_keys = ("task",)

    def __init__(self, task: str = "binary", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.task = check_choice("task", task, TASKS)

    def build(self, input_shape: Any) -> None:
        self.bias = self.add_weight(name="bias", shape=(1,), initializer="zeros")

    def call(self, logits: list[Any]) -> Any:
        total = self.bias
        for logit in logits:
            total = total + ops.sum(ops.cast(logit, self.compute_dtype), axis=-1, keepdims=True)
        return ops.sigmoid(total) if self.task == "binary" else total

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, int]:
        return (input_shape[0][0], 1)
