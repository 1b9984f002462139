"""GitHub-flavoured Markdown tables (without the optional `tabulate` dependency of pandas)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd


def fixed_decimals(digits: int) -> Callable[[float], str]:
    """A float formatter with `digits` decimals that leaves NaN cells empty."""

    def format_float(value: float) -> str:
        return "" if math.isnan(value) else f"{value:.{digits}f}"

    return format_float


def markdown_table(
    table: pd.DataFrame | Iterable[Sequence[object]],
    headers: Sequence[str] | None = None,
    *,
    float_format: Callable[[float], str] | None = None,
    right_align: Sequence[bool] | None = None,
) -> str:
    """A Markdown table of a DataFrame, or of `headers` and the rows in `table`.

    Floats go through `float_format` (default: 5 decimals, NaN empty); other cells through `str`.
    `|` is escaped and newlines become spaces, in headers and cells. Columns are right-aligned
    where `right_align` says so; for a DataFrame the default is its numeric columns, for rows none.
    """
    if isinstance(table, pd.DataFrame):
        if headers is not None:
            raise TypeError("markdown_table: a DataFrame brings its own headers")
        headers = [str(column) for column in table.columns]
        if right_align is None:
            right_align = [pd.api.types.is_numeric_dtype(dtype) for dtype in table.dtypes]
        rows: Iterable[Sequence[object]] = table.itertuples(index=False)
    elif headers is None:
        raise TypeError("markdown_table: rows need headers")
    else:
        rows = table
    if right_align is None:
        right_align = [False] * len(headers)
    if len(right_align) != len(headers):
        raise ValueError(
            f"markdown_table: {len(right_align)} alignments for {len(headers)} columns"
        )
    format_float = float_format or fixed_decimals(5)

    def cell(value: object) -> str:
        text = format_float(float(value)) if isinstance(value, float | np.floating) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(header) for header in headers) + " |",
        "|" + "|".join("---:" if right else "---" for right in right_align) + "|",
    ]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(
                f"markdown_table: a row of {len(row)} cells for {len(headers)} columns"
            )
        lines.append("| " + " | ".join(cell(value) for value in row) + " |")
    return "\n".join(lines)
