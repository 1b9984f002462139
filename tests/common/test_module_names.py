"""Names that explain themselves: no two modules or packages of fefm_lab share a name (two
`store.py`, or `tracking/sweep.py` beside the `sweep/` package, once did), so a name alone says
which one is meant."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "fefm_lab"


def test_no_two_modules_or_packages_share_a_name() -> None:
    names = [
        path.stem if path.suffix == ".py" else path.name
        for path in PACKAGE.rglob("*")
        if "__pycache__" not in path.parts
        and (
            (path.suffix == ".py" and path.name != "__init__.py")
            or (path.is_dir() and (path / "__init__.py").is_file())
        )
    ]
    assert len(names) > 90  # the walk found the package
    assert [name for name, count in Counter(names).items() if count > 1] == []
