"""Float64 NumPy references for the layers and models, written out pair by pair (shared by the
layer and model tests)."""

from __future__ import annotations

import numpy as np


def fefm_reference(v: np.ndarray, u: np.ndarray, symmetric: bool = True) -> np.ndarray:
    """r_p = v_i^T W_p v_j for the pairs i < j in lexicographic order, an explicit loop in float64.

    v: (B, n, k) field embeddings; u: (P, k, k); W_p = U_p + U_p^T if symmetric else U_p.
    """
    v, u = np.asarray(v, "float64"), np.asarray(u, "float64")
    n, scores, p = v.shape[1], [], 0
    for i in range(n):
        for j in range(i + 1, n):
            w = u[p] + u[p].T if symmetric else u[p]
            scores.append(np.einsum("bk,kl,bl->b", v[:, i], w, v[:, j]))
            p += 1
    return np.stack(scores, axis=1)


def pair_dots(v: np.ndarray) -> np.ndarray:
    """<v_i, v_j> for the pairs i < j in lexicographic order, (B, P) in float64."""
    v = np.asarray(v, "float64")
    n = v.shape[1]
    return np.stack([(v[:, i] * v[:, j]).sum(1) for i in range(n) for j in range(i + 1, n)], 1)
