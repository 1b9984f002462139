"""Helpers for the data-path tests: hand-written raw files (never rows of the real samples)."""

from __future__ import annotations

from pathlib import Path


def criteo_line(label, ints=(), cats=()) -> str:
    """One Criteo-format line: label, 13 integer fields, 26 categorical fields (missing = '')."""
    ints = [("" if v is None else str(v)) for v in ints] + [""] * (13 - len(ints))
    cats = [("" if v is None else v) for v in cats] + [""] * (26 - len(cats))
    return "\t".join([str(label), *ints, *cats])


def write_text(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def generic_config(path: Path, **overrides) -> dict:
    """A generic TSV dataset config: label `label`, categorical `c`, numeric `n`."""
    config = {
        "name": "hand",
        "format": "generic",
        "path": str(path),
        "separator": "\t",
        "header": True,
        "label": "label",
        "categorical": ["c"],
        "numeric": ["n"],
        "split": "sequential",
        "split_fractions": [0.6, 0.2, 0.2],
        "min_count": 2,
    }
    config.update(overrides)
    return config
