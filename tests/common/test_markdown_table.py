"""fefm_lab.markdown.markdown_table: exact text for DataFrames and for header + row lists."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fefm_lab.markdown import fixed_decimals, markdown_table


def test_a_dataframe_right_aligns_numbers_and_prints_five_decimals() -> None:
    frame = pd.DataFrame(
        {"model": ["deepfefm", "fm|x"], "runs": [3, 12], "auc": [0.7912345678, math.nan]}
    )
    assert markdown_table(frame).splitlines() == [
        "| model | runs | auc |",
        "|---|---:|---:|",
        "| deepfefm | 3 | 0.79123 |",
        "| fm\\|x | 12 |  |",
    ]


def test_rows_with_headers_use_the_given_float_format_and_escape_cells() -> None:
    rows = [["a\nb", 1234.5, np.float32(0.25)], ["c", 7, None]]
    text = markdown_table(
        rows, ["na|me", "value", "share"], float_format=lambda value: f"<{value:.1f}>"
    )
    assert text.splitlines() == [
        "| na\\|me | value | share |",
        "|---|---|---|",
        "| a b | <1234.5> | <0.2> |",
        "| c | 7 | None |",
    ]


def test_fixed_decimals_rounds_and_leaves_nan_empty() -> None:
    format_float = fixed_decimals(3)
    assert [format_float(v) for v in (0.12349, -2.0, math.nan)] == ["0.123", "-2.000", ""]


def test_alignment_can_be_chosen_per_column() -> None:
    text = markdown_table([[1.0, "x"]], ["a", "b"], right_align=[True, False])
    assert text.splitlines()[1] == "|---:|---|"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: markdown_table([[1, 2, 3]], ["a", "b"]), ValueError, "a row of 3 cells"),
        (lambda: markdown_table([[1]], ["a"], right_align=[True, True]), ValueError, "2 align"),
        (lambda: markdown_table([[1]]), TypeError, "rows need headers"),
        (lambda: markdown_table(pd.DataFrame({"a": [1]}), ["a"]), TypeError, "own headers"),
    ],
)
def test_mismatched_shapes_are_refused(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()
