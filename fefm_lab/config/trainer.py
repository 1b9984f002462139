"""Trainer settings: the schema of the `trainer` config group and the object the loop reads.

Defaults, types and ranges are declared once here (`option(...)`); conf/trainer/*.yaml state only
their differences. The default learning rate, 0.1, is what the `trainer=default` runs have always
used (the paper's 0.01 learns too slowly from the 1e-4 initialisation on 100k synthetic rows); the
paper presets set 0.01.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from fefm_lab.config.rules import (
    NON_NEGATIVE,
    POSITIVE,
    Rule,
    check_section,
    int_at_least,
    one_of,
    option,
    section,
)
from fefm_lab.errors import ConfigError

OPTIMIZERS = ("adagrad", "adam")
DEVICES = ("auto", "cpu", "gpu")  # trainer.device; fefm_lab.training.device places a run


MONITORS = ("val_logloss", "val_auc")


@dataclass
class EarlyStopping:
    """Stop when the monitored validation metric has not improved by `min_delta` for `patience`
    epochs."""

    monitor: str = option(
        "val_logloss",
        "val_logloss (lower is better; the paper) | val_auc (higher is better; the open benchmark "
        "BARS / FuxiCTR)",
        one_of(*MONITORS),
    )
    min_delta: float = option(5e-6, "improvement in the monitored metric that counts", NON_NEGATIVE)
    patience: int = option(2, "epochs without improvement before stopping", int_at_least(0))
    restore_best: bool = option(True, "keep the weights of the best validation epoch")


@dataclass
class TrainerConfig:
    """How one model is trained (the paper: AdaGrad, batch 1024, early stopping, lr 0.01)."""

    optimizer: str = option("adagrad", "adagrad (the paper) | adam", one_of(*OPTIMIZERS))
    learning_rate: float = option(0.1, "step size of the optimizer", POSITIVE)
    batch_size: int = option(1024, "training examples per step", int_at_least(1))
    eval_batch_size: int = option(
        16384, "batch size for validation and test predictions", int_at_least(1)
    )
    max_epochs: int = option(
        10, "upper bound on epochs (early stopping may end sooner)", int_at_least(1)
    )
    steps_per_epoch: int | None = option(
        None, "cap on steps per epoch (smoke runs); null = the whole train split", int_at_least(1)
    )
    early_stopping: EarlyStopping = section(EarlyStopping, "early stopping on validation log loss")
    # XLA measured slower than plain graphs for these models on CPU (the FEFM contraction is
    # memory-bound and XLA cannot fuse the row-sparse update): off by default.
    jit_compile: bool = option(False, "XLA-compile forward+backward (slower here for FEFM on CPU)")
    verbose: bool = option(True, "print progress (a bar or plain lines) and one line per epoch")
    # Long runs: checkpoints go under paths.checkpoint_dir/<config hash>/.
    checkpoint_every_minutes: float | None = option(
        10.0,
        "save a checkpoint every this many minutes as well as at every epoch end "
        "(null: epoch ends only)",
        POSITIVE,
    )
    # A save writes the whole state (weights, optimizer slots, best weights: 7.4 GiB at 39 tables
    # of 1M rows, k 16), which took 27 s on a shared disk: 4.6% of a 10-minute interval.
    checkpoint_max_time_share: float | None = option(
        0.01,
        "mid-epoch saves are spaced at least (last save's seconds / this) apart, so they cost "
        "at most this share of training time on a slow disk (null: exactly every "
        "checkpoint_every_minutes)",
        Rule(lambda v: 0 < v < 1, "a number in (0, 1)"),
    )
    keep_checkpoints: bool = option(False, "keep the checkpoints when the run finishes")
    log_every_steps: int = option(
        100,
        "every this many steps, the mean train log loss since the last and samples/s go to "
        "MLflow (step = global step)",
        int_at_least(1),
    )
    progress: str = option(
        "auto",
        "auto: a progress bar on a terminal, plain lines elsewhere | bar | lines",
        one_of("auto", "bar", "lines"),
    )
    progress_every_seconds: float = option(30.0, "seconds between plain progress lines", POSITIVE)
    device: str = option(
        "auto",
        "auto: the first GPU TensorFlow sees, else the CPU | cpu: never a GPU | gpu: a GPU or "
        "an error",
        one_of(*DEVICES),
    )

    def __post_init__(self) -> None:
        try:
            check_section(dataclasses.asdict(self), TrainerConfig, "trainer.")
        except ConfigError as error:
            raise ValueError(str(error)) from None

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> TrainerConfig:
        """Build from a plain dict (e.g. `OmegaConf.to_container(cfg.trainer)`)."""
        values = dict(values)
        stopping = values.pop("early_stopping", None) or {}
        return cls(early_stopping=EarlyStopping(**stopping), **values)
