"""A search space in Hydra's Optuna-sweeper syntax, as Optuna distributions.

One Hydra sweep override is one dimension:

| override | distribution |
|---|---|
| `interval(a, b)` | FloatDistribution(a, b) (Hydra reads interval bounds as floats) |
| `tag(int, interval(a, b))` | IntDistribution(a, b) |
| `tag(log, interval(a, b))`, `tag(int, log, interval(a, b))` | the same on a log scale |
| `range(a, b[, step])` | IntDistribution(a, last value below b, step) (b excluded) |
| `choice(x, y, ...)`, `x,y,...`, `glob(...)` | CategoricalDistribution of the values |

A fixed override (`key=value`) is not a dimension: it goes to every trial unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from fefm_lab.errors import ConfigError

# Category values Optuna stores as they are; others (lists, dicts) are kept as their text.
_PLAIN = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Dimension:
    """One searched key: its distribution and how a sampled value becomes an override."""

    key: str  # the override's key, with its prefix (`+key`) if any
    distribution: BaseDistribution
    texts: tuple[str, ...] = ()  # categorical: each category's override text

    def override(self, value: Any) -> str:
        """`key=value` for the trial's launcher."""
        if isinstance(self.distribution, CategoricalDistribution):
            return f"{self.key}={self.texts[self.distribution.choices.index(value)]}"
        return f"{self.key}={value!r}" if isinstance(value, float) else f"{self.key}={value}"


def dimension(override: Override) -> Dimension:
    """The dimension a sweep override describes (ConfigError naming the override if it cannot)."""
    line, key = override.input_line, override.get_key_element()
    sweep = override.value()
    tags = getattr(sweep, "tags", set()) or set()
    log = "log" in tags
    if isinstance(sweep, IntervalSweep):
        low, high = sweep.start, sweep.end  # numbers: Hydra's parser checks them
        if not low < high:
            raise ConfigError(f"{line}: an interval needs low < high, got {low}, {high}")
        if log and low <= 0:
            raise ConfigError(f"{line}: a log interval needs low > 0, got {low}")
        if "int" in tags:
            if int(low) != low or int(high) != high:
                raise ConfigError(f"{line}: an int interval needs integer bounds")
            return Dimension(key, IntDistribution(int(low), int(high), log=log))
        return Dimension(key, FloatDistribution(float(low), float(high), log=log))
    if isinstance(sweep, RangeSweep):
        start, stop, step = sweep.start, sweep.stop, sweep.step
        values = list(override.sweep_iterator())
        if not values:
            raise ConfigError(f"{line}: the range is empty")
        if all(isinstance(v, int) for v in (start, stop, step)) and step > 0:
            return Dimension(key, IntDistribution(values[0], values[-1], log=log, step=step))
        return _categorical(key, values, [str(v) for v in values])
    if isinstance(sweep, ChoiceSweep) or override.is_discrete_sweep():
        texts = list(override.sweep_string_iterator())
        values = list(override.sweep_iterator())
        if len(texts) != len(values):  # glob: its matches are the values
            values = texts
        return _categorical(key, values, texts)
    raise ConfigError(f"{line}: not a search dimension (interval, range or choice)")


def _categorical(key: str, values: Sequence[Any], texts: Sequence[str]) -> Dimension:
    choices = [v if isinstance(v, _PLAIN) else t for v, t in zip(values, texts, strict=True)]
    return Dimension(key, CategoricalDistribution(choices), tuple(texts))


def search_space(overrides: Sequence[Override]) -> tuple[dict[str, Dimension], list[str]]:
    """The dimensions of the sweep overrides (a later one of the same key wins) and the fixed
    overrides' lines, in order."""
    dimensions: dict[str, Dimension] = {}
    fixed: list[str] = []
    for override in overrides:
        if override.is_sweep_override():
            found = dimension(override)
            dimensions.pop(found.key, None)
            dimensions[found.key] = found
        else:
            fixed.append(override.input_line)
    return dimensions, fixed


def validation_values(override: Override) -> list[str]:
    """The values of a dimension a plan checks before any trial: every category, a range's
    ends, an interval's bounds (a config valid at both bounds is taken valid between them)."""
    found = dimension(override)
    distribution = found.distribution
    if isinstance(distribution, CategoricalDistribution):
        return list(found.texts)
    ends = [distribution.low, distribution.high]
    return [Dimension("", distribution).override(v)[1:] for v in ends]
