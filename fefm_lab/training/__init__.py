"""Training: the loop, the row-sparse optimizer and the exact metrics."""

from fefm_lab.training.config import EarlyStopping, TrainerConfig
from fefm_lab.training.loop import Trainer, TrainingDiverged, TrainResult, fit_and_evaluate
from fefm_lab.training.metrics import auc, log_loss

__all__ = [
    "EarlyStopping",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "TrainingDiverged",
    "auc",
    "fit_and_evaluate",
    "log_loss",
]
