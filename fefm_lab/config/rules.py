"""Typed, ranged config fields: one declaration gives the default, the type, the range and the doc.

A schema dataclass declares each field with `option(default, doc, rule)`. The type comes from the
annotation (OmegaConf enforces it when Hydra composes; `check_value` re-checks plain dicts), the
range from the optional `Rule`, and the doc is what `fefm-lab show`'s readers and the YAML comments
refer to. Nothing here imports Hydra or TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fefm_lab.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """What a value must satisfy beyond its type, and how to say so ('an integer >= 1')."""

    accepts: Callable[[Any], bool]
    expected: str


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def int_at_least(minimum: int) -> Rule:
    return Rule(lambda v: v >= minimum, f"an integer >= {minimum}")


def one_of(*choices: str) -> Rule:
    text = " or ".join(repr(c) for c in choices) if len(choices) == 2 else None
    return Rule(lambda v: v in choices, text or "one of " + ", ".join(choices))


# Finite: inf passes `> 0` (NaN fails every comparison) and would train on nothing but NaN.
NON_NEGATIVE = Rule(lambda v: 0 <= v < math.inf, "a finite number >= 0")
POSITIVE = Rule(lambda v: 0 < v < math.inf, "a finite number > 0")
FRACTION = Rule(lambda v: 0 <= v < 1, "a number in [0, 1)")
NON_EMPTY_TEXT = Rule(lambda v: v != "", "a non-empty string")
PORT = Rule(lambda v: 1 <= v <= 65535, "a port 1..65535")


def option(default: Any, doc: str, rule: Rule | None = None) -> Any:
    """A schema field: `default` (lists are copied per instance), its documentation and range."""
    metadata = {"doc": doc, "rule": rule}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def section(factory: Callable[[], Any], doc: str) -> Any:
    """A nested schema (a sub-dataclass) with its documentation."""
    return field(default_factory=factory, metadata={"doc": doc, "rule": None})


# ---------------------------------------------------------------- types


def _type_ok(annotation: Any, value: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(arm, value) for arm in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is Any:
        return True
    if origin in (list, tuple):
        (item,) = typing.get_args(annotation)[:1] or (Any,)
        return isinstance(value, list | tuple) and all(_type_ok(item, v) for v in value)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return _is_int(value)
    if annotation is float:
        return _is_number(value)
    if annotation is str:
        return isinstance(value, str)
    return True  # nested dataclasses are checked field by field


def _type_text(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(annotation) if a is not type(None)]
        return "null or " + " or ".join(_type_text(a) for a in arms)
    if origin in (list, tuple):
        (item,) = typing.get_args(annotation)[:1] or (Any,)
        return f"a list of {_type_text(item).removeprefix('a ').removeprefix('an ')}s"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        annotation, "a value"
    )


def expected(annotation: Any, rule: Rule | None) -> str:
    """What to tell the user a key takes: the rule's words, else its type's."""
    if rule is None:
        return _type_text(annotation)
    origin = typing.get_origin(annotation)
    optional = origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(
        annotation
    )
    return f"null or {rule.expected}" if optional else rule.expected


# ---------------------------------------------------------------- checking


@dataclass(frozen=True)
class FieldInfo:
    """One schema field as the checks see it: resolved type, default, rule and doc."""

    name: str
    type: Any
    default: Any
    rule: Rule | None
    doc: str


@functools.cache
def schema_fields(schema: type) -> dict[str, FieldInfo]:
    """Field name -> FieldInfo (annotations resolved: schemas use postponed annotations)."""
    hints = typing.get_type_hints(schema)
    return {
        item.name: FieldInfo(
            item.name,
            hints[item.name],
            item.default_factory() if item.default is dataclasses.MISSING else item.default,
            item.metadata.get("rule"),
            item.metadata.get("doc", ""),
        )
        for item in dataclasses.fields(schema)
    }


def check_value(schema: type, key: str, value: Any, prefix: str) -> None:
    """Raise ConfigError `prefix.key: expected ..., got ...` unless value fits the field."""
    item = schema_fields(schema)[key]
    rule = item.rule
    if dataclasses.is_dataclass(item.type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{prefix}{key}: expected a mapping of settings, got {value!r}")
        check_section(value, item.type, f"{prefix}{key}.")
        return
    ok = _type_ok(item.type, value)
    if ok and rule is not None and value is not None:
        ok = rule.accepts(value)
    if not ok:
        raise ConfigError(f"{prefix}{key}: expected {expected(item.type, rule)}, got {value!r}")


def check_section(values: Mapping[str, Any], schema: type, prefix: str) -> None:
    """Every key of `values` must be a field of `schema` and fit its type and rule."""
    fields = schema_fields(schema)
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{prefix}{key}: unknown key; allowed: {', '.join(fields)}")
        check_value(schema, key, value, prefix)
