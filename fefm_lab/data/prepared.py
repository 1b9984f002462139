"""A complete prepared dataset on disk: Arrow IPC shards per split, feature map, manifest.

Shards are uncompressed Arrow IPC files, memory-mapped when read: a sparse field is an int32
column, a dense field a float32 column per dimension, the label a float32 column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from fefm_lab.data.feature_map import DENSE, FeatureMap
from fefm_lab.errors import DataError
from fefm_lab.features import DenseFeat, SparseFeat

SPLITS = ("train", "validation", "test")
LABEL_COLUMN = "__label__"
MANIFEST = "manifest.json"
FEATURE_MAP = "feature_map.json"


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; received {split!r}")


@dataclass(frozen=True)
class PreparedData:
    """A prepared dataset directory. Open one with `PreparedData.open(directory)`."""

    directory: Path
    feature_map: FeatureMap
    manifest: dict[str, Any]
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def open(cls, directory: Path | str) -> PreparedData:
        """Open a complete prepared dataset (its manifest is written last, so it marks one)."""
        directory = Path(directory)
        manifest_path = directory / MANIFEST
        if not manifest_path.is_file():
            raise DataError(f"{directory}: not a complete prepared dataset (no {MANIFEST})")
        manifest = json.loads(manifest_path.read_text())
        return cls(directory, FeatureMap.load(directory / FEATURE_MAP), manifest)

    def rows(self, split: str) -> int:
        check_split(split)
        return int(self.manifest["splits"][split]["rows"])

    def positives(self, split: str) -> int:
        check_split(split)
        return int(self.manifest["splits"][split]["positives"])

    def check_trainable(self) -> None:
        """Refuse data no model can be trained and scored on, before any training.

        Training needs rows; early stopping and the validation/test AUC need both classes in
        their split (AUC is undefined on one class, and log loss on one class says nothing).
        A split with no rows or one class is a data problem, not a model that diverged.
        """
        counts = {s: (self.rows(s), self.positives(s)) for s in SPLITS}
        fractions = self.manifest.get("settings", {}).get("split_fractions")
        shown = ", ".join(f"{s} {n:,} rows / {c:,} clicks" for s, (n, c) in counts.items())
        setting = "dataset.split_fractions" + (f"={fractions}" if fractions else "")
        for split, (rows, clicks) in counts.items():
            if rows == 0:
                problem = "has no rows"
            elif clicks in (0, rows):
                problem = f"has one class only ({'all clicks' if clicks else 'no clicks'})"
            else:
                continue
            raise DataError(
                f"{self.directory}: the {split} split {problem} ({shown}); training and scoring "
                f"need rows of both classes in every split: give more rows (with clicks and "
                f"non-clicks), or change {setting}"
            )

    def shard_paths(self, split: str) -> list[Path]:
        check_split(split)
        return [self.directory / name for name in self.manifest["splits"][split]["shards"]]

    def row_bytes(self) -> int:
        """Bytes of one row in memory: 4 per sparse id, 4 per dense value, 4 for the label."""
        fm = self.feature_map
        return 4 * (len(fm.sparse_fields) + sum(f.dimension for f in fm.dense_fields) + 1)

    def read_shard(self, path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """One shard as (features, labels): features shaped (n, 1) or (n, d), labels (n,)."""
        # One sequential read, then Arrow over the bytes in memory: a memory map would fault its
        # pages in column by column across the record batches, slow on a cold page cache.
        with pa.OSFile(str(path), "rb") as source:
            buffer = source.read_buffer()
        return self._arrays(ipc.open_file(pa.BufferReader(buffer)).read_all())

    def _arrays(self, table: pa.Table) -> tuple[dict[str, np.ndarray], np.ndarray]:
        features: dict[str, np.ndarray] = {}
        for spec in self.feature_map.fields:
            if spec.kind == DENSE:
                columns = [
                    _column(table, _dense_column(spec.name, i)) for i in range(spec.dimension)
                ]
                features[spec.name] = np.stack(columns, axis=1).astype(np.float32, copy=False)
            else:
                features[spec.name] = _column(table, spec.name).reshape(-1, 1)
        return features, _column(table, LABEL_COLUMN)

    def load_split(self, split: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The whole split in memory: features[name] (n, 1) int32 / (n, d) float32, labels (n,)."""
        check_split(split)
        tables = []
        for path in self.shard_paths(split):
            with pa.memory_map(str(path), "r") as source:
                tables.append(ipc.open_file(source).read_all())
        if not tables:
            return self._arrays(self.empty_table())
        return self._arrays(pa.concat_tables(tables).combine_chunks())

    def empty_table(self) -> pa.Table:
        return pa.schema(shard_schema(self.feature_map)).empty_table()

    def feature_columns(
        self, embedding_dim: int
    ) -> tuple[list[SparseFeat | DenseFeat], list[SparseFeat | DenseFeat]]:
        """(linear_feature_columns, dnn_feature_columns): every field in both, in field order."""
        columns: list[SparseFeat | DenseFeat] = []
        for spec in self.feature_map.fields:
            if spec.kind == DENSE:
                columns.append(DenseFeat(spec.name, spec.dimension))
            else:
                columns.append(SparseFeat(spec.name, int(spec.vocabulary_size), embedding_dim))
        return list(columns), list(columns)


def _dense_column(name: str, index: int) -> str:
    return name if index == 0 else f"{name}__{index}"


def _column(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    if column.num_chunks == 1:
        return column.chunk(0).to_numpy()
    return column.to_numpy()


def shard_schema(feature_map: FeatureMap) -> list[pa.Field]:
    """The Arrow fields of a shard, in feature-map order, label last."""
    fields = []
    for spec in feature_map.fields:
        if spec.kind == DENSE:
            fields += [
                pa.field(_dense_column(spec.name, i), pa.float32(), False)
                for i in range(spec.dimension)
            ]
        else:
            fields.append(pa.field(spec.name, pa.int32(), False))
    fields.append(pa.field(LABEL_COLUMN, pa.float32(), False))
    return fields
