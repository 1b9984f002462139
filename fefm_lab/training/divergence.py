"""Saturation and collapse: a trained model that is no better than knowing the click rate.

A learning rate far too high can saturate the outputs without ever producing a NaN: the run ends
with AUC 0.5 and a log loss of several nats, and looks finished. Two checks catch it, judged on
the validation predictions of the epoch whose model is tested (the best epoch with
`restore_best`, else the last):

- **worse than the constant predictor.** Predicting the training click rate r for every row has
  per-row log loss c_i = -[y_i log r + (1 - y_i) log(1 - r)]. With the model's per-row log loss
  l_i, the differences d_i = l_i - c_i over the n validation rows give
  z = mean(d) / (std(d) / sqrt(n)) (std with ddof 1). The model is worse when
  z > `EXCESS_Z_LIMIT` = 3: its mean log loss exceeds the constant's by more than three standard
  errors (one-sided p < 0.0014), so chance on a small validation split (a debug run's few
  hundred rows hover at the constant's loss) does not fail a run, while a saturated model
  (several nats above) fails on any split;
- **collapsed.** All validation predictions lie within `COLLAPSE_RANGE` = 1e-6 of each other:
  the model predicts one value whatever the input.

`validation_signals` computes the numbers per epoch (they go into the epoch's history record);
`check_tested_epoch` raises `TrainingDiverged` with the reason at the end of training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from fefm_lab.training.metrics import PROBABILITY_EPSILON

EXCESS_Z_LIMIT = 3.0
COLLAPSE_RANGE = 1e-6
# Keys of an epoch record filled in by `validation_signals`.
CONSTANT_LOGLOSS = "val_constant_logloss"
EXCESS_Z = "val_excess_z"
PREDICTION_RANGE = "val_prediction_range"


class TrainingDiverged(RuntimeError):
    """Training produced a useless model: a NaN loss, saturated or collapsed predictions."""


def _row_log_loss(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    p = np.clip(probabilities, PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
    return -(labels * np.log(p) + (1.0 - labels) * np.log1p(-p))


def validation_signals(
    labels: np.ndarray, predictions: np.ndarray, train_click_rate: float
) -> dict[str, float]:
    """The constant predictor's log loss, the model's excess over it in standard errors (z),
    and the range of the predictions; NaN where the split is too small to say."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    if y.size == 0:
        return {CONSTANT_LOGLOSS: math.nan, EXCESS_Z: math.nan, PREDICTION_RANGE: math.nan}
    constant = _row_log_loss(y, np.full_like(y, train_click_rate))
    differences = _row_log_loss(y, p) - constant
    mean = float(differences.mean())
    spread = float(differences.std(ddof=1)) if y.size > 1 else math.nan
    if y.size < 2:
        z = math.nan
    elif spread > 0:
        z = mean / (spread / math.sqrt(y.size))
    else:  # every row differs by the same amount: certain, in whichever direction
        z = math.copysign(math.inf, mean) if mean != 0 else 0.0
    return {
        CONSTANT_LOGLOSS: float(constant.mean()),
        EXCESS_Z: z,
        PREDICTION_RANGE: float(p.max() - p.min()),
    }


def failure_reason(record: Mapping[str, float], train_click_rate: float) -> str | None:
    """Why the epoch's model is useless (see the module docstring), or None."""
    epoch = record.get("epoch", "?")
    spread = record.get(PREDICTION_RANGE, math.nan)
    if spread <= COLLAPSE_RANGE:
        return (
            f"predictions collapsed to a constant in epoch {epoch}: every validation "
            f"prediction within {spread:.2e} of each other (limit {COLLAPSE_RANGE:g})"
        )
    z = record.get(EXCESS_Z, math.nan)
    if z > EXCESS_Z_LIMIT:
        return (
            f"saturated: validation log loss {record['val_logloss']:.5f} in epoch {epoch} is "
            f"worse than predicting the training click rate {train_click_rate:.5f} for every "
            f"row (log loss {record[CONSTANT_LOGLOSS]:.5f}) by {z:.1f} standard errors "
            f"(limit {EXCESS_Z_LIMIT:g})"
        )
    return None


def check_tested_epoch(
    history: Sequence[Mapping[str, float]], tested_epoch: int, train_click_rate: float
) -> None:
    """Raise TrainingDiverged when the model of `tested_epoch` is saturated or collapsed.

    Records without the signals (a checkpoint written before they existed) are not judged.
    """
    for record in history:
        if record.get("epoch") == tested_epoch:
            reason = failure_reason(record, train_click_rate)
            if reason is not None:
                raise TrainingDiverged(reason)
            return
