"""Exact metrics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fefm_lab.config.trainer import TrainerConfig
from fefm_lab.training.metrics import auc, log_loss


def test_auc_counts_pairs_and_ties() -> None:
    # positives {0.8, 0.4}, negatives {0.4, 0.1}: pairs (0.8>0.4) (0.8>0.1) (0.4=0.4 half) (0.4>0.1)
    assert auc([1, 0, 1, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(3.5 / 4)
    assert math.isnan(auc([1, 1], [0.2, 0.3]))


def test_log_loss_matches_formula_and_clips() -> None:
    expected = -(math.log(0.9) + math.log(1 - 0.2)) / 2
    assert log_loss([1, 0], [0.9, 0.2]) == pytest.approx(expected, rel=1e-12)
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-7), rel=1e-9)
    with pytest.raises(ValueError, match="differ in length"):
        log_loss(np.ones(2), np.ones(3))


def test_trainer_config_from_mapping_and_validation() -> None:
    config = TrainerConfig.from_mapping(
        {"optimizer": "adam", "batch_size": 64, "early_stopping": {"patience": 3}}
    )
    assert config.batch_size == 64 and config.early_stopping.patience == 3
    assert config.early_stopping.min_delta == 5e-6
    with pytest.raises(ValueError, match="trainer.optimizer: expected .adagrad. or .adam., got"):
        TrainerConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="trainer.batch_size: expected an integer >= 1, got 0"):
        TrainerConfig(batch_size=0)
