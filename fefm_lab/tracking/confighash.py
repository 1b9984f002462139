"""Run identity: which runs are "the same configuration" (for skipping and resuming).

`config_hash` covers what changes a run's results and nothing else:

- the resolved `dataset`, `model`, `trainer` and `seed` config, minus `SPEED_ONLY_KEYS` (settings
  that change how fast, not what, a run computes; the raw file's path is among them);
- the prepared data's content fingerprint (`data_fingerprint`), in place of the path string;
- the code version of the maths (`code_version`): modules `CODE_VERSION_MODULES` parsed, their
  docstrings dropped, dumped by `ast.dump` without positions and hashed. Comments, docstrings
  and formatting do not change it; any change to code (a statement, a constant, an error
  message) in those modules does. It depends on the Python minor version (ast.dump's format).
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

# What decides a run's numbers. Tracking, paths, sweep bookkeeping and threads do not.
HASHED_KEYS = ("dataset", "model", "trainer", "seed")
# Settings that only change speed or what is printed, never a result. dataset.path: the data
# enters through its content fingerprint, so a moved file is the same data and a replaced one
# is not.
SPEED_ONLY_KEYS = frozenset(
    {
        ("dataset", "path"),
        ("dataset", "block_bytes"),
        ("dataset", "shard_rows"),
        ("trainer", "verbose"),
        ("trainer", "eval_batch_size"),
        # how a run is watched, checkpointed and placed: not what it computes
        ("trainer", "progress"),
        ("trainer", "progress_every_seconds"),
        ("trainer", "checkpoint_every_minutes"),
        ("trainer", "checkpoint_max_time_share"),
        ("trainer", "keep_checkpoints"),
        ("trainer", "log_every_steps"),
        ("trainer", "device"),
    }
)
# The modules whose code computes a run's numbers: raw bytes -> prepared data -> model ->
# training -> metrics. The tracking, report and command-line modules are not among them.
CODE_VERSION_MODULES = (
    "fefm_lab.data.encode",
    "fefm_lab.data.feature_map",
    "fefm_lab.data.input",
    "fefm_lab.data.keys",
    "fefm_lab.data.layout",
    "fefm_lab.data.prepare",
    "fefm_lab.data.prepared",
    "fefm_lab.data.reader",
    "fefm_lab.data.split",
    "fefm_lab.data.synthetic",
    "fefm_lab.data.vocab",
    "fefm_lab.features",
    "fefm_lab.layers",
    "fefm_lab.model",
    "fefm_lab.training.config",
    "fefm_lab.training.divergence",
    "fefm_lab.training.loop",
    "fefm_lab.training.metrics",
    "fefm_lab.training.optimizer",
)


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


def _without_speed_only(values: Mapping[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in values.items():
        here = (*path, key)
        if here in SPEED_ONLY_KEYS:
            continue
        kept[key] = _without_speed_only(value, here) if isinstance(value, Mapping) else value
    return kept


def hashed_part(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that the hash covers."""
    return _without_speed_only({key: resolved.get(key) for key in HASHED_KEYS})


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def data_fingerprint(manifest: Mapping[str, Any]) -> str:
    """Content fingerprint of a prepared dataset, from its manifest (no byte of data is read).

    Covers the raw source's size and the SHA-256 of its first and last MiB (what `prepare`
    fingerprints), the settings that shaped the prepared content, and the row and click counts
    per split; not the source's path or modification time, so a copied or moved file is the same
    data. Two files of equal size whose first and last MiB and per-split counts agree are taken
    for the same data.
    """
    source = manifest["source"]
    return _digest(
        {
            "source": {key: source[key] for key in ("size", "head_sha256", "tail_sha256")},
            "settings": manifest["settings"],
            "layout_version": manifest.get("layout_version"),
            "rows_read": manifest.get("rows_read"),
            "bad_rows": manifest.get("bad_rows"),
            "splits": {
                split: {key: stats.get(key) for key in ("rows", "positives")}
                for split, stats in manifest["splits"].items()
            },
        }
    )


class _DropDocstrings(ast.NodeTransformer):
    def _strip(self, node):
        self.generic_visit(node)
        body = node.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
        return node

    visit_Module = visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _strip


def source_version(source: str) -> str:
    """Hash of a module's code without comments, docstrings or formatting."""
    tree = _DropDocstrings().visit(ast.parse(source))
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()


@cache
def current_code_version(modules: tuple[str, ...] = CODE_VERSION_MODULES) -> str:
    """Combined `source_version` of the modules (first 16 hex digits); absent modules count too.

    Files are read from the installed package without importing them (no TensorFlow start).
    """
    package = Path(__file__).resolve().parent.parent
    parts = {}
    for name in modules:
        path = package.joinpath(*name.split(".")[1:]).with_suffix(".py")
        parts[name] = source_version(path.read_text(encoding="utf-8")) if path.is_file() else None
    return _digest(parts)


def config_hash(
    resolved: Mapping[str, Any], *, data_fingerprint: str, code_version: str | None = None
) -> str:
    """sha256 (first 16 hex digits) of `hashed_part(resolved)`, the data and the code version.

    Two configs that run the same computation on the same data with the same code get the same
    hash whatever their tracking, output or speed settings, so a repeated sweep can skip them.
    `code_version` defaults to the running code's.
    """
    version = code_version if code_version is not None else current_code_version()
    return _digest(
        {"config": hashed_part(resolved), "data": data_fingerprint, "code_version": version}
    )
