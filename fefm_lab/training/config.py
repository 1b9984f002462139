"""Trainer settings, mirrored one to one by `conf/trainer/*.yaml`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when validation log loss has not improved by `min_delta` for `patience` epochs."""

    min_delta: float = 5e-6
    patience: int = 2
    restore_best: bool = True


@dataclass(frozen=True)
class TrainerConfig:
    """How one model is trained (paper defaults: AdaGrad, lr 0.01, batch 1024)."""

    optimizer: str = "adagrad"  # adagrad | adam
    learning_rate: float = 0.01
    batch_size: int = 1024
    eval_batch_size: int = 16384
    max_epochs: int = 10
    steps_per_epoch: int | None = None  # cap per epoch (smoke runs); None = whole train split
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    # XLA measured slower than plain graphs for these models on CPU (the FEFM contraction is
    # memory-bound and XLA cannot fuse the row-sparse update): off by default.
    jit_compile: bool = False
    verbose: bool = True
    # Long runs. A checkpoint is saved at every epoch end and every `checkpoint_every_minutes`
    # (None: epoch ends only) under paths.checkpoint_dir/<config hash>/, and deleted when the
    # run finishes unless `keep_checkpoints`.
    checkpoint_every_minutes: float | None = 10.0
    keep_checkpoints: bool = False
    # Train log loss (mean over the last `log_every_steps` steps) and samples/s go to MLflow
    # every `log_every_steps` steps, with step = global step.
    log_every_steps: int = 100
    # auto: a progress bar on a terminal, plain lines every `progress_every_seconds` elsewhere.
    progress: str = "auto"  # auto | bar | lines
    progress_every_seconds: float = 30.0
    # auto: the first GPU TensorFlow sees, else the CPU; cpu: never a GPU; gpu: a GPU or an error.
    device: str = "auto"  # auto | cpu | gpu

    def __post_init__(self) -> None:
        if self.optimizer not in ("adagrad", "adam"):
            raise ValueError(
                f"trainer.optimizer must be 'adagrad' or 'adam', received {self.optimizer!r}"
            )
        for key in ("learning_rate",):
            if not getattr(self, key) > 0:
                raise ValueError(f"trainer.{key} must be > 0, received {getattr(self, key)!r}")
        for key in ("batch_size", "eval_batch_size", "max_epochs"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"trainer.{key} must be >= 1, received {getattr(self, key)!r}")
        if self.checkpoint_every_minutes is not None and not self.checkpoint_every_minutes > 0:
            raise ValueError(
                "trainer.checkpoint_every_minutes must be > 0 or null, "
                f"received {self.checkpoint_every_minutes!r}"
            )
        if int(self.log_every_steps) < 1:
            raise ValueError(
                f"trainer.log_every_steps must be >= 1, received {self.log_every_steps!r}"
            )
        if not self.progress_every_seconds > 0:
            raise ValueError(
                "trainer.progress_every_seconds must be > 0, "
                f"received {self.progress_every_seconds!r}"
            )
        if self.progress not in ("auto", "bar", "lines"):
            raise ValueError(
                f"trainer.progress must be 'auto', 'bar' or 'lines', received {self.progress!r}"
            )
        if self.device not in ("auto", "cpu", "gpu"):
            raise ValueError(
                f"trainer.device must be 'auto', 'cpu' or 'gpu', received {self.device!r}"
            )
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(
                f"trainer.steps_per_epoch must be >= 1 or null, received {self.steps_per_epoch!r}"
            )

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> TrainerConfig:
        """Build from a plain dict (e.g. `OmegaConf.to_container(cfg.trainer)`)."""
        values = dict(values)
        stopping = values.pop("early_stopping", None) or {}
        return cls(early_stopping=EarlyStopping(**stopping), **values)
