"""`feature_map.json`: what each prepared field is, and the ids a model will see."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fefm_lab.fileio import atomic_write_text

SPARSE = "sparse"
DENSE = "dense"


@dataclass(frozen=True)
class FieldSpec:
    """One prepared field.

    A sparse field holds int32 ids in [0, vocabulary_size): `oov_id` for rare or unseen values,
    `missing_id` for empty values, the kept values after them. A dense field holds `dimension`
    float32 values; `scale_min`/`scale_max` are the train statistics it was scaled with.
    `encoding` says how the raw value became the field: string, integer, log_bucket,
    hour_of_day or dense_minmax.
    """

    name: str
    kind: str
    encoding: str
    vocabulary_size: int | None = None
    missing_id: int | None = None
    oov_id: int | None = None
    dimension: int = 1
    distinct_train_values: int | None = None
    scale_min: float | None = None
    scale_max: float | None = None


@dataclass(frozen=True)
class FeatureMap:
    """All prepared fields in order, plus the raw label column's name."""

    fields: tuple[FieldSpec, ...]
    label: str

    @property
    def sparse_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.kind == SPARSE)

    @property
    def dense_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.kind == DENSE)

    @property
    def total_vocabulary(self) -> int:
        """Sum of the sparse fields' vocabulary sizes (the paper's "features")."""
        return sum(f.vocabulary_size or 0 for f in self.sparse_fields)

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(f"no field named {name!r} (fields: {[f.name for f in self.fields]})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "total_vocabulary": self.total_vocabulary,
            "fields": [{k: v for k, v in asdict(f).items() if v is not None} for f in self.fields],
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FeatureMap:
        return cls(
            fields=tuple(FieldSpec(**spec) for spec in values["fields"]), label=values["label"]
        )

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> FeatureMap:
        return cls.from_dict(json.loads(Path(path).read_text()))
