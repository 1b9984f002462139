"""The training-curve PNG of one run: log loss per epoch (train, validation) and validation AUC."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_training_curves(history: Sequence[dict[str, float]], path: Path, title: str) -> Path:
    """Two panels: train and validation log loss, and validation AUC, against the epoch."""
    epochs = [record["epoch"] for record in history]
    figure, (loss_axis, auc_axis) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_axis.plot(epochs, [r["train_logloss"] for r in history], "o-", label="train")
    loss_axis.plot(epochs, [r["val_logloss"] for r in history], "o-", label="validation")
    loss_axis.set(xlabel="epoch", ylabel="log loss", title="log loss")
    loss_axis.legend()
    auc_axis.plot(epochs, [r["val_auc"] for r in history], "o-", color="C1")
    auc_axis.set(xlabel="epoch", ylabel="AUC", title="validation AUC")
    for axis in (loss_axis, auc_axis):
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)
    return path
