"""Markdown tables from DataFrames (without the optional `tabulate` dependency)."""

from __future__ import annotations

import math

import pandas as pd


def format_cell(value: object, digits: int = 5) -> str:
    """Floats with `digits` decimals (NaN as empty), the rest as text with `|` escaped."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, digits: int = 5) -> str:
    """A GitHub-flavoured Markdown table of `frame` (numbers right-aligned)."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    align = (
        "|"
        + "|".join(
            "---:" if pd.api.types.is_numeric_dtype(frame[c]) else "---" for c in frame.columns
        )
        + "|"
    )
    body = [
        "| " + " | ".join(format_cell(v, digits) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, align, *body])
