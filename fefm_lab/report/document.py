"""The report's contents before they are rendered (Markdown, CSV, PNG, HTML: `write`, `html`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from fefm_lab.report.settings import ReportSettings


@dataclass
class Report:
    """Everything the report says, before it is rendered to files."""

    title: str
    table: pd.DataFrame
    runs: pd.DataFrame
    warnings: list[str]
    teacher: str
    gap_seeds: pd.DataFrame
    training: str = ""
    settings: ReportSettings = field(default_factory=ReportSettings)
    tuned: str = ""  # the settings each ablation's tuning chose (hydra/sweeper=optuna)
    adaptive: str = ""  # an adaptive-seeds sweep's seeds, CPU-hours and cost (adaptive_study)
    published: pd.DataFrame = field(default_factory=pd.DataFrame)
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)  # per run and epoch
