"""Feature columns: what a model is told about its inputs.

A categorical column's input is an int array of shape (batch, 1) holding ids in
[0, vocabulary_size); a dense column's input is a float array of shape (batch, dimension).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SparseFeat:
    """A categorical column embedded in a `vocabulary_size x embedding_dim` table."""

    name: str
    vocabulary_size: int
    # DeepCTR's SparseFeat default, kept for code written against its API; fefm-lab's runs take
    # the model's `embedding_dim` from the config (fefm_lab.config.schema, 8 for DeepFEFM)
    embedding_dim: int = 4
    group_name: str = "default"

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("SparseFeat needs a non-empty name")
        if self.vocabulary_size < 1:
            raise ValueError(
                f"SparseFeat {self.name!r}: vocabulary_size must be >= 1, "
                f"received {self.vocabulary_size!r}"
            )
        if self.embedding_dim < 1:
            raise ValueError(
                f"SparseFeat {self.name!r}: embedding_dim must be >= 1, "
                f"received {self.embedding_dim!r}"
            )


@dataclass(frozen=True)
class DenseFeat:
    """A numeric column of `dimension` float values."""

    name: str
    dimension: int = 1

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("DenseFeat needs a non-empty name")
        if self.dimension < 1:
            raise ValueError(
                f"DenseFeat {self.name!r}: dimension must be >= 1, received {self.dimension!r}"
            )


FeatureColumn = SparseFeat | DenseFeat
