"""Flattened config parameters and the config hash that identifies a run's computation."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# What decides a run's numbers. Tracking, paths, sweep bookkeeping and verbosity do not.
HASHED_KEYS = ("dataset", "model", "trainer", "seed")
UNHASHED_LEAVES = {("trainer", "verbose")}


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}, "c": [1, 2]}` -> `{"a.b": 1, "c": [1, 2]}` (lists stay leaves)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def _without_unhashed(values: Mapping[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in values.items():
        here = (*path, key)
        if here in UNHASHED_LEAVES:
            continue
        kept[key] = _without_unhashed(value, here) if isinstance(value, Mapping) else value
    return kept


def hashed_part(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that the hash covers."""
    return _without_unhashed({key: resolved.get(key) for key in HASHED_KEYS})


def config_hash(resolved: Mapping[str, Any]) -> str:
    """sha256 (first 16 hex digits) of the canonical JSON of `hashed_part(resolved)`.

    Two configs that run the same computation (same data, model, trainer and seed) get the same
    hash whatever their tracking or output settings, so a repeated sweep can skip them.
    """
    canonical = json.dumps(hashed_part(resolved), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
