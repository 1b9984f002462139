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
