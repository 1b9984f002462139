"""Saturation and collapse checks on hand-built predictions, against float64 references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fefm_lab.training.divergence import (
    CONSTANT_LOGLOSS,
    EXCESS_Z,
    PREDICTION_RANGE,
    TrainingDiverged,
    check_tested_epoch,
    failure_reason,
    validation_signals,
)

LABELS = np.array([1, 0, 0, 1, 0, 0, 0, 0], dtype=np.float32)


def _reference(labels, predictions, rate) -> tuple[float, float]:
    """(constant log loss, z) written out row by row in float64."""
    rows = []
    constant = []
    for y, p in zip(labels.tolist(), predictions.tolist(), strict=True):
        model = -math.log(p) if y == 1 else -math.log(1 - p)
        const = -math.log(rate) if y == 1 else -math.log(1 - rate)
        rows.append(model - const)
        constant.append(const)
    n = len(rows)
    mean = sum(rows) / n
    std = math.sqrt(sum((d - mean) ** 2 for d in rows) / (n - 1))
    return sum(constant) / n, mean / (std / math.sqrt(n))


def test_signals_match_the_row_by_row_reference() -> None:
    predictions = np.array([0.9, 0.2, 0.1, 0.6, 0.3, 0.05, 0.2, 0.1])
    signals = validation_signals(LABELS, predictions, 0.25)
    constant, z = _reference(LABELS, predictions, 0.25)
    assert signals[CONSTANT_LOGLOSS] == pytest.approx(constant, rel=1e-12)
    assert signals[EXCESS_Z] == pytest.approx(z, rel=1e-12)
    assert signals[EXCESS_Z] < 0  # a good model is better than the constant
    assert signals[PREDICTION_RANGE] == pytest.approx(0.85, rel=1e-12)


def test_saturated_predictions_fail_with_the_numbers() -> None:
    labels = np.tile(LABELS, 10)
    saturated = np.where(np.arange(80) % 2 == 0, 1.0 - 1e-7, 1e-7)  # 0/1 outputs, half wrong
    signals = validation_signals(labels, saturated, 0.25)
    record = {"epoch": 2, "val_logloss": 7.9, **signals}
    constant, z = _reference(labels, saturated, 0.25)
    assert signals[EXCESS_Z] == pytest.approx(z, rel=1e-9) and z > 3
    assert failure_reason(record, 0.25) == (
        f"saturated: validation log loss 7.90000 in epoch 2 is worse than predicting the "
        f"training click rate 0.25000 for every row (log loss {constant:.5f}) by {z:.1f} "
        "standard errors (limit 3)"
    )


def test_slightly_worse_on_a_small_split_is_chance_not_failure() -> None:
    # The constant itself, nudged: a debug run's model after a few steps.
    nudged = np.full(8, 0.25) + np.array([0.01, -0.01, 0.02, 0.0, 0.01, -0.02, 0.0, 0.01])
    signals = validation_signals(LABELS, nudged, 0.25)
    assert signals[EXCESS_Z] < 3
    assert failure_reason({"epoch": 1, "val_logloss": 0.6, **signals}, 0.25) is None


def test_collapsed_predictions_fail_even_at_the_click_rate() -> None:
    signals = validation_signals(LABELS, np.full(8, 0.25, dtype=np.float32), 0.25)
    assert signals[EXCESS_Z] == 0.0 and signals[PREDICTION_RANGE] == 0.0
    reason = failure_reason({"epoch": 3, "val_logloss": 0.56, **signals}, 0.25)
    assert reason == (
        "predictions collapsed to a constant in epoch 3: every validation prediction within "
        "0.00e+00 of each other (limit 1e-06)"
    )


def test_the_tested_epoch_is_the_one_judged() -> None:
    bad = {"epoch": 1, "val_logloss": 3.0, CONSTANT_LOGLOSS: 0.5, EXCESS_Z: 9.0}
    good = {"epoch": 2, "val_logloss": 0.4, CONSTANT_LOGLOSS: 0.5, EXCESS_Z: -9.0}
    bad[PREDICTION_RANGE] = good[PREDICTION_RANGE] = 0.9
    check_tested_epoch([bad, good], 2, 0.2)  # the best epoch is fine
    with pytest.raises(TrainingDiverged, match="saturated: validation log loss 3.00000 in epoch 1"):
        check_tested_epoch([bad, good], 1, 0.2)
    check_tested_epoch([{"epoch": 1, "val_logloss": 3.0}], 1, 0.2)  # old record: not judged
