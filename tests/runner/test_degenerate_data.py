"""Data no model can be trained and scored on is named before training, not called "diverged"."""

from __future__ import annotations

from pathlib import Path

import pytest

from fefm_lab import cli
from fefm_lab.tracking.store import open_store


def _criteo(path: Path, labels: list[int]) -> Path:
    """Criteo rows with the given labels, each with a few distinct values."""
    lines = []
    for row, label in enumerate(labels):
        ints = [str(row % 7), str(row % 3)] + [""] * 11
        cats = [f"{row % 5:08x}", f"{row % 2:08x}"] + [""] * 24
        lines.append("\t".join([str(label), *ints, *cats]) + "\n")
    path.write_text("".join(lines))
    return path


@pytest.mark.parametrize(
    ("labels", "fractions", "named"),
    [
        # 1 row: it lands in one split, the train split is empty
        ([1], "[0.8,0.1,0.1]", "the train split has no rows"),
        # every label 0
        ([0] * 40, "[0.6,0.2,0.2]", "the train split has one class only (no clicks)"),
        # sequential split: clicks only in the first rows, so validation and test have none
        ([1, 0] * 12 + [0] * 16, "[0.6,0.2,0.2]", "the validation split has one class only"),
    ],
)
def test_degenerate_split_is_named_before_training(
    tmp_path: Path, capsys, labels: list[int], fractions: str, named: str
) -> None:
    raw = _criteo(tmp_path / "raw.txt", labels)
    code = cli.main(
        [
            "run",
            "debug=tiny",
            "dataset=criteo",
            f"dataset.path={raw}",
            "dataset.split=sequential",
            f"dataset.split_fractions={fractions}",
            f"paths.root_dir={tmp_path}",
            "mlflow.experiment=degenerate",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    (line,) = [x for x in err.splitlines() if x.startswith("error: ")]
    assert named in line
    assert "rows /" in line and "clicks" in line  # every split's rows and clicks
    assert line.endswith(f"or change dataset.split_fractions={fractions.replace(',', ', ')}")
    assert "diverged" not in err and "saturated" not in err and "Traceback" not in err
    store = open_store(f"sqlite:///{tmp_path}/mlflow.db", "degenerate")
    assert store.search() == []  # no run: training never started
