"""Exact evaluation metrics, computed in float64 from every prediction of a split.

Keras's streaming AUC uses 200 thresholds and is off by about 2e-5, the size of the gaps an
ablation study looks for, so reported numbers come from here.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

PROBABILITY_EPSILON = 1e-7


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean binary cross-entropy -[y log p + (1 - y) log(1 - p)], p clipped to [eps, 1 - eps]."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    p = np.clip(
        np.asarray(probabilities, dtype=np.float64).reshape(-1),
        PROBABILITY_EPSILON,
        1.0 - PROBABILITY_EPSILON,
    )
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} differ in length")
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Exact ROC AUC (ties count one half); NaN when the split holds a single class."""
    y = np.asarray(labels).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.size == 0 or np.all(y == y[0]):
        return float("nan")
    return float(roc_auc_score(y, s))
