"""Keras 3 layers for DeepFEFM and its comparison models.

Every layer uses `keras.ops` only, precomputes its index tables in Python (no Python loop over
field pairs inside the graph) and is registered as serializable, so a model saved to `.keras`
reloads in safe mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

PACKAGE = "fefm_lab"
L2_MODES = ("table", "batch")
FEFM_IMPLEMENTATIONS = ("pair_batched", "field_grouped")


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


def _check_l2(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"`{name}` must be a number >= 0, received {value!r}")
    return float(value)


def _check_l2_mode(value: str) -> str:
    if value not in L2_MODES:
        raise ValueError(f"`l2_mode` must be one of {L2_MODES}, received {value!r}")
    return value


def _check_seed(value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"`seed` must be an int or None, received {value!r}")
    return value


@keras.saving.register_keras_serializable(package=PACKAGE)
class FEFMInteraction(keras.layers.Layer):
    """Field-embedded factorisation machine interactions: one scalar per field pair.

    For field embeddings v_0..v_{n-1} in R^k and the P = n(n-1)/2 pairs (i < j) in lexicographic
    order, the layer returns

        r_p = v_i^T W_p v_j,   W_p = U_p + U_p^T  (symmetric=True)   or   W_p = U_p  (FmFM),

    with one trainable tensor U of shape (P, k, k), initialised truncated-normal with stddev 1.
    All pairs are computed in one batched contraction over index tables built in Python:

    - `"pair_batched"`: gather v_i and v_j per pair into (P, B, k), one batched matmul
      (P, B, k) x (P, k, k), then multiply by v_j and sum over k.
    - `"field_grouped"`: each field i is the left side of about (n-1)/2 pairs (its partners
      (i + d) mod n, d = 1..ceil((n-1)/2)), so every pair is computed exactly once; one batched
      matmul (n, B, k) x (n, k, m k) against the gathered (and, where i > j, transposed) matrices.

    Both compute the same numbers; `scripts/bench_fefm_layer_variants.py` measures them.

    Args:
        symmetric: use W_p = U_p + U_p^T (FEFM). False gives unconstrained matrices (FmFM).
        l2_reg: L2 strength on U (lambda * sum of squares of U, not of U + U^T).
        implementation: `"pair_batched"` or `"field_grouped"`.
        seed: seed of the initialiser of U.

    Input shape: (batch, n, k) with n >= 2. Output shape: (batch, P).

    Example:

    >>> import numpy as np
    >>> layer = FEFMInteraction(seed=7)
    >>> layer(np.ones((2, 4, 3), "float32")).shape
    (2, 6)

    Reference: H. Pande, "Field-Embedded Factorization Machines for Click-through Rate
    Prediction", arXiv:2009.09931, Sec. 3.
    """

    def __init__(
        self,
        symmetric: bool = True,
        l2_reg: float = 0.0,
        implementation: str = "pair_batched",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(symmetric, bool):
            raise ValueError(f"`symmetric` must be a bool, received {symmetric!r}")
        if implementation not in FEFM_IMPLEMENTATIONS:
            raise ValueError(
                f"`implementation` must be one of {FEFM_IMPLEMENTATIONS}, "
                f"received {implementation!r}"
            )
        self.symmetric = symmetric
        self.l2_reg = _check_l2("l2_reg", l2_reg)
        self.implementation = implementation
        self.seed = _check_seed(seed)

    def build(self, input_shape: Sequence[int | None]) -> None:
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                f"FEFMInteraction expects input of shape (batch, fields, k), "
                f"received {tuple(input_shape)!r}"
            )
        num_fields, dim = int(input_shape[1]), int(input_shape[2])
        if num_fields < 2:
            raise ValueError(
                f"FEFMInteraction needs at least 2 fields to form a pair, received {num_fields}"
            )
        self.num_fields, self.embedding_dim = num_fields, dim
        self.left, self.right = pair_indices(num_fields)
        self.num_pairs = len(self.left)
        if self.implementation == "field_grouped":
            self._build_field_groups()
        self.field_matrices = self.add_weight(
            name="field_matrices",
            shape=(self.num_pairs, dim, dim),
            initializer=keras.initializers.TruncatedNormal(stddev=1.0, seed=self.seed),
            regularizer=keras.regularizers.L2(self.l2_reg) if self.l2_reg > 0 else None,
        )

    def _build_field_groups(self) -> None:
        """Index tables of the field-grouped contraction.

        Slot (i, d) pairs field i with partner (i + d) mod n. For odd n the slots d = 1..(n-1)/2
        cover every pair once; for even n the slots d = n/2 of fields i >= n/2 repeat a pair and
        get a zero matrix. `slot_matrix` indexes the stack [W; W^T; 0] of shape (2P + 1, k, k).
        """
        n, pairs = self.num_fields, self.num_pairs
        slots = n // 2
        pair_of = {
            (int(i), int(j)): p for p, (i, j) in enumerate(zip(self.left, self.right, strict=True))
        }
        partner = np.zeros((n, slots), "int32")
        slot_matrix = np.full((n, slots), 2 * pairs, "int32")
        pair_slot = np.zeros(pairs, "int32")
        for i in range(n):
            for d in range(1, slots + 1):
                j = (i + d) % n
                partner[i, d - 1] = j
                if 2 * d == n and i >= slots:
                    continue
                p = pair_of[(min(i, j), max(i, j))]
                slot_matrix[i, d - 1] = p if i < j else pairs + p
                pair_slot[p] = i * slots + d - 1
        self.slots, self.partner, self.slot_matrix, self.pair_slot = (
            slots,
            partner,
            slot_matrix,
            pair_slot,
        )

    def pair_matrices(self) -> Any:
        """W, shape (P, k, k): U + U^T when symmetric, else U."""
        u = self.field_matrices
        return u + ops.transpose(u, (0, 2, 1)) if self.symmetric else ops.convert_to_tensor(u)

    def call(self, inputs: Any) -> Any:
        if self.implementation == "field_grouped":
            return self._call_field_grouped(inputs)
        return self._call_pair_batched(inputs)

    def _call_pair_batched(self, inputs: Any) -> Any:
        by_field = ops.transpose(inputs, (1, 0, 2))  # (n, B, k): pair gathers copy whole rows
        v_left = ops.take(by_field, self.left, axis=0)  # (P, B, k)
        v_right = ops.take(by_field, self.right, axis=0)
        projected = ops.matmul(v_left, self.pair_matrices())  # (P, B, k)
        return ops.transpose(ops.sum(projected * v_right, axis=-1))  # (B, P)

    def _call_field_grouped(self, inputs: Any) -> Any:
        n, k, slots = self.num_fields, self.embedding_dim, self.slots
        w = self.pair_matrices()
        stack = ops.concatenate(
            [w, ops.transpose(w, (0, 2, 1)), ops.zeros((1, k, k), dtype=w.dtype)], axis=0
        )
        grouped = ops.take(stack, self.slot_matrix.reshape(-1), axis=0)  # (n*slots, k, k)
        grouped = ops.reshape(grouped, (n, slots, k, k))
        grouped = ops.reshape(ops.transpose(grouped, (0, 2, 1, 3)), (n, k, slots * k))
        by_field = ops.transpose(inputs, (1, 0, 2))  # (n, B, k)
        projected = ops.matmul(by_field, grouped)  # (n, B, slots*k)
        projected = ops.reshape(projected, (n, -1, slots, k))
        partners = ops.take(inputs, self.partner.reshape(-1), axis=1)  # (B, n*slots, k)
        partners = ops.transpose(ops.reshape(partners, (-1, n, slots, k)), (1, 0, 2, 3))
        per_slot = ops.sum(projected * partners, axis=-1)  # (n, B, slots)
        per_slot = ops.reshape(ops.transpose(per_slot, (1, 0, 2)), (-1, n * slots))
        return ops.take(per_slot, self.pair_slot, axis=1)  # (B, P)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, int]:
        n = int(input_shape[1])
        return (input_shape[0], n * (n - 1) // 2)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "symmetric": self.symmetric,
            "l2_reg": self.l2_reg,
            "implementation": self.implementation,
            "seed": self.seed,
        }


def _offsets(vocabulary_sizes: Sequence[int]) -> np.ndarray:
    """Row offset of each column inside a table that stacks all columns' rows."""
    return np.concatenate([[0], np.cumsum(vocabulary_sizes)[:-1]]).astype("int32")


def _check_vocabulary_sizes(vocabulary_sizes: Sequence[int]) -> list[int]:
    sizes = list(vocabulary_sizes)
    if not sizes or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in sizes):
        raise ValueError(
            f"`vocabulary_sizes` must be a non-empty list of ints >= 1, received {sizes!r}"
        )
    return sizes


def _stack_ids(ids: Any) -> Any:
    """A list of (B, 1) id tensors, or one (B, n) tensor, as one (B, n) int32 tensor."""
    if isinstance(ids, list | tuple):
        ids = ops.concatenate([ops.cast(column, "int32") for column in ids], axis=1)
    return ops.cast(ids, "int32")


@keras.saving.register_keras_serializable(package=PACKAGE)
class FieldEmbedding(keras.layers.Layer):
    """Embeds n categorical columns from ONE shared table with per-column row offsets.

    Column c's id x maps to row offset_c + x of a (sum of vocabularies, k) table, so all columns
    are looked up in one gather. The gather reads the variable itself, so its gradient is a
    `tf.IndexedSlices` over the looked-up rows (sparse row updates stay cheap at 1M rows).

    L2, `l2_mode="table"`: lambda * sum of squares of the whole table (the reference).
    `l2_mode="batch"`: lambda * (1/B) * sum over the batch's examples of the squared norms of the
    rows each example looks up: the per-example penalty on the active parameters, as in SGD for
    factorisation machines. Only looked-up rows receive a gradient from it.

    Args:
        vocabulary_sizes: rows of each column, in input order.
        embedding_dim: k.
        l2_reg: lambda >= 0.
        l2_mode: `"table"` or `"batch"`.
        stddev: initial rows are N(0, stddev^2); 0 gives zeros.
        seed: seed of the initialiser.

    Input: a list of n (batch, 1) int tensors or one (batch, n) int tensor.
    Output: (batch, n, k).

    Example:

    >>> import numpy as np
    >>> layer = FieldEmbedding([3, 5], embedding_dim=4, seed=1)
    >>> layer([np.array([[0], [2]]), np.array([[4], [1]])]).shape
    (2, 2, 4)
    """

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
        self.vocabulary_sizes = _check_vocabulary_sizes(vocabulary_sizes)
        if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int):
            raise ValueError(f"`embedding_dim` must be an int >= 1, received {embedding_dim!r}")
        if embedding_dim < 1:
            raise ValueError(f"`embedding_dim` must be an int >= 1, received {embedding_dim!r}")
        self.embedding_dim = embedding_dim
        self.l2_reg = _check_l2("l2_reg", l2_reg)
        self.l2_mode = _check_l2_mode(l2_mode)
        self.stddev = _check_l2("stddev", stddev)
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
            self.add_loss(self.l2_reg * ops.mean(ops.sum(ops.square(embedded), axis=(1, 2))))
        return embedded

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, int, int]:
        batch = input_shape[0][0] if isinstance(input_shape, list) else input_shape[0]
        return (batch, len(self.vocabulary_sizes), self.embedding_dim)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocabulary_sizes": self.vocabulary_sizes,
            "embedding_dim": self.embedding_dim,
            "l2_reg": self.l2_reg,
            "l2_mode": self.l2_mode,
            "stddev": self.stddev,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class LinearLogit(keras.layers.Layer):
    """First-order logit: sum_c w_c[x_c] + w_dense^T x_dense, no bias.

    The categorical weights live in one shared 1-d table (zeros at start, offsets per column;
    not shared with the k-d embedding table). The dense kernel starts glorot-normal as in the
    reference. L2 (`l2_reg`) covers both: the table as in `FieldEmbedding` (`l2_mode`), the
    dense kernel always as a whole (it is used by every example).

    Args:
        vocabulary_sizes: rows of each categorical column (may be empty).
        dense_dim: total width of the dense columns (0 for none).
        l2_reg: lambda >= 0.
        l2_mode: `"table"` or `"batch"`.
        seed: seed of the dense kernel's initialiser.

    Input: a list of the categorical (batch, 1) id tensors followed by the dense
    (batch, d_c) tensors. Output: (batch, 1).

    Example:

    >>> import numpy as np
    >>> layer = LinearLogit([3], dense_dim=2, seed=1)
    >>> layer([np.array([[1]]), np.array([[0.5, 2.0]], "float32")]).shape
    (1, 1)
    """

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
        self.vocabulary_sizes = list(vocabulary_sizes)
        if self.vocabulary_sizes:
            _check_vocabulary_sizes(self.vocabulary_sizes)
        if isinstance(dense_dim, bool) or not isinstance(dense_dim, int) or dense_dim < 0:
            raise ValueError(f"`dense_dim` must be an int >= 0, received {dense_dim!r}")
        if not self.vocabulary_sizes and dense_dim == 0:
            raise ValueError("LinearLogit needs at least one categorical or dense column")
        self.dense_dim = dense_dim
        self.l2_reg = _check_l2("l2_reg", l2_reg)
        self.l2_mode = _check_l2_mode(l2_mode)
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
                self.add_loss(self.l2_reg * ops.mean(ops.sum(ops.square(weights), axis=1)))
            logit = ops.sum(weights, axis=1, keepdims=True)
        if self.dense_dim:
            dense = ops.concatenate(
                [ops.cast(x, self.compute_dtype) for x in inputs[num_sparse:]], 1
            )
            logit = logit + ops.matmul(dense, self.dense_kernel)
        return logit

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, int]:
        return (input_shape[0][0], 1)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocabulary_sizes": self.vocabulary_sizes,
            "dense_dim": self.dense_dim,
            "l2_reg": self.l2_reg,
            "l2_mode": self.l2_mode,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class SelectFields(keras.layers.Layer):
    """Keeps the given fields of a (batch, n, k) tensor, in the given order: (batch, m, k).

    Example:

    >>> import numpy as np
    >>> SelectFields([2, 0])(np.zeros((1, 3, 4), "float32")).shape
    (1, 2, 4)
    """

    def __init__(self, indices: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]
        if not self.indices or min(self.indices) < 0:
            raise ValueError(
                f"`indices` must be a non-empty list of ints >= 0, received {indices!r}"
            )

    def call(self, inputs: Any) -> Any:
        return ops.take(inputs, np.asarray(self.indices, "int32"), axis=1)

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        return (input_shape[0], len(self.indices), *input_shape[2:])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "indices": self.indices}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FMInteraction(keras.layers.Layer):
    """Factorisation machine second-order logit: sum_{i<j} <v_i, v_j>.

    Computed as 1/2 sum_k ((sum_i v_ik)^2 - sum_i v_ik^2) (Rendle 2010, Lemma 3.1).
    Input (batch, n, k), output (batch, 1).

    Example:

    >>> import numpy as np
    >>> float(FMInteraction()(np.ones((1, 3, 2), "float32"))[0, 0])
    6.0
    """

    def call(self, inputs: Any) -> Any:
        square_of_sum = ops.square(ops.sum(inputs, axis=1))
        sum_of_squares = ops.sum(ops.square(inputs), axis=1)
        return 0.5 * ops.sum(square_of_sum - sum_of_squares, axis=1, keepdims=True)

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, int]:
        return (input_shape[0], 1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FwFMInteraction(keras.layers.Layer):
    """Field-weighted FM second-order logit: sum_{p=(i<j)} r_p <v_i, v_j>.

    One scalar r_p per field pair (lexicographic order), truncated-normal with stddev 1 at start.
    Reference: Pan et al., "Field-weighted Factorization Machines for Click-Through Rate
    Prediction in Display Advertising", WWW 2018.

    Args:
        l2_reg: L2 strength on r.
        seed: seed of r's initialiser.

    Input (batch, n, k) with n >= 2, output (batch, 1).

    Example:

    >>> import numpy as np
    >>> FwFMInteraction(seed=3)(np.ones((2, 3, 4), "float32")).shape
    (2, 1)
    """

    def __init__(self, l2_reg: float = 0.0, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.l2_reg = _check_l2("l2_reg", l2_reg)
        self.seed = _check_seed(seed)

    def build(self, input_shape: Sequence[int | None]) -> None:
        num_fields = int(input_shape[1])
        if num_fields < 2:
            raise ValueError(
                f"FwFMInteraction needs at least 2 fields to form a pair, received {num_fields}"
            )
        self.left, self.right = pair_indices(num_fields)
        self.pair_weights = self.add_weight(
            name="pair_weights",
            shape=(len(self.left),),
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

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "l2_reg": self.l2_reg, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SumLogits(keras.layers.Layer):
    """Prediction head: b + sum of all inputs' entries, then sigmoid (binary) or identity.

    Each input is (batch, m): a (batch, 1) logit, or the (batch, P) FEFM pair scores whose sum
    is the FEFM logit.

    Args:
        task: `"binary"` (probability) or `"regression"` (unbounded value).

    Example:

    >>> import numpy as np
    >>> float(SumLogits("regression")([np.ones((1, 1)), np.ones((1, 1))])[0, 0])
    2.0
    """

    def __init__(self, task: str = "binary", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if task not in ("binary", "regression"):
            raise ValueError(f"`task` must be 'binary' or 'regression', received {task!r}")
        self.task = task

    def build(self, input_shape: Any) -> None:
        self.bias = self.add_weight(name="bias", shape=(1,), initializer="zeros")

    def call(self, logits: list[Any]) -> Any:
        total = self.bias
        for logit in logits:
            total = total + ops.sum(ops.cast(logit, self.compute_dtype), axis=-1, keepdims=True)
        return ops.sigmoid(total) if self.task == "binary" else total

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, int]:
        return (input_shape[0][0], 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "task": self.task}
