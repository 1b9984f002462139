"""One job's config: composed once, validated once, and typed.

`job_config(resolved)` is the one validation of a job (`validate_config`) and builds, from what it
checked, the typed parts the job's layers read: the trainer's `TrainerConfig`, the dataset's
`DatasetConfig`, the model's `ModelSettings`, and the schema dataclasses of `paths`, `mlflow`,
`sweep` and `tune`. A job passes these parts down; no module below it digs into the config.

`values` is the resolved config itself, kept as composed: the run's record is made of it key
for key (MLflow parameters, `config.yaml`, the config hash), so a run records what it always did.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from fefm_lab.config.ablation import ablation_label, model_seed
from fefm_lab.config.dataset import DatasetConfig
from fefm_lab.config.schema import (
    MODEL_CONFIG_ONLY,
    MlflowConfig,
    PathsConfig,
    SweepConfig,
    TuneConfig,
)
from fefm_lab.config.trainer import TrainerConfig
from fefm_lab.config.validation import trainer_config, validate_config


@dataclass(frozen=True)
class ModelSettings:
    """The model a job builds: `build_model(name, ..., seed=..., **parameters)`."""

    name: str
    # k of the feature columns; None for a model without embeddings (LR)
    embedding_dim: int | None
    # the builder's keywords besides `seed` (the model section without name and embedding_dim)
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class JobConfig:
    """A job's validated config: typed parts, and the resolved values the run records."""

    values: Mapping[str, Any]
    seed: int
    # the seed of initialisation and shuffling (`seed`, or its `control` stream's)
    model_seed: int
    # the ablation the run is, read from its flags (`fefm_lab.config.ablation.ablation_label`)
    ablation: str
    force: bool
    verbose: bool
    threads: int | None
    model: ModelSettings
    trainer: TrainerConfig
    dataset: DatasetConfig
    paths: PathsConfig
    mlflow: MlflowConfig
    sweep: SweepConfig
    tune: TuneConfig

    def record(self) -> dict[str, Any]:
        """The resolved config as a plain dict (a copy): what MLflow and the config hash get."""
        return copy.deepcopy(dict(self.values))

    def with_parent_run(self, run_id: str) -> JobConfig:
        """The same job as a member of the sweep whose parent run is `run_id`
        (`sweep.parent_run_id`, which its run's parameters and tags carry)."""
        values = self.record()
        values["sweep"]["parent_run_id"] = run_id
        sweep = dataclasses.replace(self.sweep, parent_run_id=run_id)
        return dataclasses.replace(self, values=MappingProxyType(values), sweep=sweep)


def _section(schema: type, values: Mapping[str, Any]) -> Any:
    """A schema dataclass filled from a validated section (missing keys keep their defaults)."""
    return schema(**copy.deepcopy(dict(values or {})))


def job_config(resolved: Mapping[str, Any]) -> JobConfig:
    """Validate a resolved config (ConfigError naming the key) and type it for the job."""
    dataset = validate_config(resolved)
    model = dict(resolved["model"])
    return JobConfig(
        values=MappingProxyType(copy.deepcopy(dict(resolved))),
        seed=int(resolved["seed"]),
        model_seed=model_seed(resolved),
        ablation=ablation_label(resolved),
        force=bool(resolved.get("force", False)),
        verbose=bool(resolved.get("verbose", False)),
        threads=resolved.get("threads"),
        model=ModelSettings(
            name=str(model["name"]),
            embedding_dim=model.get("embedding_dim"),
            parameters=MappingProxyType(
                {k: v for k, v in model.items() if k not in MODEL_CONFIG_ONLY}
            ),
        ),
        trainer=trainer_config(resolved),
        dataset=dataset,
        paths=_section(PathsConfig, resolved.get("paths")),
        mlflow=_section(MlflowConfig, resolved.get("mlflow")),
        sweep=_section(SweepConfig, resolved.get("sweep")),
        tune=_section(TuneConfig, resolved.get("tune")),
    )
