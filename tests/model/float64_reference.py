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


def fefm_gradients_reference(
    v: np.ndarray, u: np.ndarray, upstream: np.ndarray, symmetric: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """dL/dv and dL/dU of L = sum_{b,p} upstream[b, p] r_bp, pair by pair in float64.

    dr/dv_i = W_p v_j, dr/dv_j = W_p^T v_i, dr/dW_p = v_i v_j^T, and dW/dU: U + U^T (symmetric).
    """
    v, u, g = (np.asarray(a, "float64") for a in (v, u, upstream))
    n, d_v, d_u, p = v.shape[1], np.zeros_like(v), np.zeros_like(u), 0
    for i in range(n):
        for j in range(i + 1, n):
            w = u[p] + u[p].T if symmetric else u[p]
            d_v[:, i] += g[:, p, None] * (v[:, j] @ w.T)
            d_v[:, j] += g[:, p, None] * (v[:, i] @ w)
            d_w = np.einsum("b,bk,bl->kl", g[:, p], v[:, i], v[:, j])
            d_u[p] = d_w + d_w.T if symmetric else d_w
            p += 1
    return d_v, d_u


def pair_dots(v: np.ndarray) -> np.ndarray:
    """<v_i, v_j> for the pairs i < j in lexicographic order, (B, P) in float64."""
    v = np.asarray(v, "float64")
    n = v.shape[1]
    return np.stack([(v[:, i] * v[:, j]).sum(1) for i in range(n) for j in range(i + 1, n)], 1)


def cross_net_v2_reference(
    x0: np.ndarray, kernels: list[np.ndarray], biases: list[np.ndarray]
) -> np.ndarray:
    """DCN-V2's x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l in float64, example by example, with the
    stored kernels K_l = W_l^T (so W_l x_l is K_l^T x_l)."""
    x0 = np.asarray(x0, "float64")
    out = np.empty_like(x0)
    for b in range(x0.shape[0]):
        x = x0[b].copy()
        for kernel, bias in zip(kernels, biases, strict=True):
            w_l = np.asarray(kernel, "float64").T
            x = x0[b] * (w_l @ x + np.asarray(bias, "float64")) + x
        out[b] = x
    return out
