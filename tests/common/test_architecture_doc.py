"""docs/architecture.md's "Layers" section is the import contracts in pyproject: the same layers
in the same order, every contract named; and the one rule no contract states, TensorFlow's
private API in `kernels/` only."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _layers_section() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    return text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]


def test_the_diagram_lists_the_contracts_layers_in_order() -> None:
    (layers,) = [c for c in _contracts() if c["id"] == "layers"]
    expected = [name.strip() for layer in layers["layers"] for name in layer.split("|")]
    diagram = _layers_section().split("```")[1]
    drawn = []
    for line in diagram.splitlines():
        if line and not line[0].isspace():  # an indented line continues the one above
            first_column = re.split(r"\s{2,}", line.strip())[0]
            words = re.findall(r"[a-z_]+", first_column.replace("fefm_lab.", ""))
            drawn += [word for word in words if word != "then"]
    assert drawn == expected


def test_every_contract_is_named_in_the_rules() -> None:
    section = _layers_section()
    for contract in _contracts():
        assert f"- `{contract['id']}`:" in section, contract["id"]


def test_tensorflows_private_api_only_in_kernels() -> None:
    users = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "fefm_lab").rglob("*.py")
        if "tensorflow.python" in path.read_text() and path.parent.name != "kernels"
    ]
    assert users == []
