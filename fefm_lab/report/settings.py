"""What the report's statistics take from the `report` config section, in one value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fefm_lab.config.rules import schema_fields
from fefm_lab.config.schema import MarginConfig, ReportConfig


def _default_margins() -> dict[str, float]:
    return {name: info.default for name, info in schema_fields(MarginConfig).items()}


@dataclass(frozen=True)
class ReportSettings:
    """Margins per metric, the family-wise alpha, the planned looks (1: a fixed-seed study; an
    adaptive sweep sets its own), the fixed budget of epochs (None: no budget view) and whether
    the open benchmark's published numbers go beside the runs on its datasets."""

    margins: Mapping[str, float] = field(default_factory=_default_margins)
    alpha: float = schema_fields(ReportConfig)["alpha"].default
    looks: int = 1
    budget_epochs: int | None = None
    # the runs on the open benchmark's datasets beside its published numbers (report.published)
    published: bool = schema_fields(ReportConfig)["published"].default

    @classmethod
    def from_config(cls, report: Mapping[str, Any], *, looks: int = 1) -> ReportSettings:
        """From a resolved `report` section (keys absent there keep the schema's defaults)."""
        margins = {**_default_margins(), **dict(report.get("margin") or {})}
        return cls(
            margins={name: float(value) for name, value in margins.items()},
            alpha=float(report.get("alpha", cls.alpha)),
            looks=looks,
            budget_epochs=report.get("budget_epochs"),
            published=bool(report.get("published", cls.published)),
        )
