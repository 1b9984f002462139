"""A small prepared dataset whose click depends on a planted field pair (shared by loop tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from fefm_lab.data import PreparedData, prepare


def prepare_planted(
    root: Path,
    *,
    name: str,
    fields: list[str],
    rows: int,
    values_per_field: int,
    seed: int,
    logit: Callable[[np.ndarray], np.ndarray],
) -> PreparedData:
    """Write `rows` CSV rows of categorical values ("v0", "v1", ...) with clicks drawn from
    sigmoid(logit(values)), then prepare them (shuffled 0.64/0.16/0.20 split, min_count 1)."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, values_per_field, size=(rows, len(fields)))
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logit(values)))).astype(int)
    path = root / f"{name}.csv"
    lines = ["label," + ",".join(fields)]
    lines += [
        f"{y}," + ",".join(f"v{v}" for v in row) for y, row in zip(labels, values, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    config = {
        "name": name,
        "format": "generic",
        "path": str(path),
        "separator": ",",
        "header": True,
        "label": "label",
        "categorical": fields,
        "numeric": [],
        "split": "shuffled",
        "split_fractions": [0.64, 0.16, 0.20],
        "min_count": 1,
    }
    return prepare(config, seed=0, data_root=root / "prepared", progress=False)
