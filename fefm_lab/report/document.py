"""The report's contents before they are rendered (Markdown, CSV, PNG, HTML: `write`, `html`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from fefm_lab.markdown import markdown_table
from fefm_lab.report.settings import ReportSettings


@dataclass(frozen=True)
class Section:
    """A titled part of the report: a paragraph, a table, a paragraph after it (the report's
    inline Markdown: `code`, **bold**), rendered alike in the Markdown file and the HTML page."""

    title: str
    text: str
    table: pd.DataFrame
    after: str = ""
    table_id: str = ""  # the HTML table's id
    wrap: tuple[str, ...] = ()  # columns whose long values may break anywhere in the HTML page

    def markdown(self) -> str:
        """`**Title.** text`, the table, the paragraph after it; ends with one newline."""
        text = f"**{self.title}.** {self.text}\n\n{markdown_table(self.table)}\n"
        return text + (f"\n{self.after}\n" if self.after else "")


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
    tuned: Section | None = None  # the settings each ablation's tuning chose (hydra/sweeper=optuna)
    adaptive: Section | None = None  # an adaptive-seeds sweep's seeds, CPU-hours, cost
    published: pd.DataFrame = field(default_factory=pd.DataFrame)
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)  # per run and epoch
