"""`scripts/embed_results.py`: generated files replace their README blocks, headings demoted."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "embed_results.py"


def _load():
    spec = importlib.util.spec_from_file_location("embed_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_embed_replaces_blocks_and_keeps_missing_ones(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.md").write_text("# Title\n\n| a |\n|---|\n| 1 |\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "## Section\n"
        "<!-- BEGIN generated: results/table.md -->\nold text\n<!-- END generated -->\n"
        "<!-- BEGIN generated: results/missing.md -->\nkept\n<!-- END generated -->\n"
    )
    assert _load().embed(readme) == ["results/table.md"]
    assert readme.read_text() == (
        "## Section\n"
        "<!-- BEGIN generated: results/table.md -->\n### Title\n\n| a |\n|---|\n| 1 |\n"
        "<!-- END generated -->\n"
        "<!-- BEGIN generated: results/missing.md -->\nkept\n<!-- END generated -->\n"
    )
