"""Training: the loop, the row-sparse optimizer and the exact metrics.

The loop and optimizer load TensorFlow, so they are imported lazily: reading a `TrainerConfig`
(config validation, `fefm-lab show`) stays fast.
"""

from fefm_lab.config.trainer import EarlyStopping, TrainerConfig

_LOOP_EXPORTS = ("TrainResult", "Trainer", "TrainingDiverged", "fit_and_evaluate")
_METRIC_EXPORTS = ("auc", "log_loss")

__all__ = ["EarlyStopping", "TrainerConfig", *_LOOP_EXPORTS, *_METRIC_EXPORTS]


def __getattr__(name: str):
    if name in _LOOP_EXPORTS:
        from fefm_lab.training import loop

        return getattr(loop, name)
    if name in _METRIC_EXPORTS:
        from fefm_lab.training import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module 'fefm_lab.training' has no attribute {name!r}")
