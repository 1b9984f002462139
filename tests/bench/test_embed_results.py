"""`scripts/embed_results.py`: generated files replace their README blocks, headings demoted."""

from __future__ import annotations

from pathlib import Path

from scripts.embed_results import embed


def test_embed_replaces_blocks_and_keeps_missing_ones(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.md").write_text("# Title\n\n| a |\n|---|\n| 1 |\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "## Section\n"
        "<!-- BEGIN generated: results/table.md -->\nold text\n<!-- END generated -->\n"
        "<!-- BEGIN generated: results/missing.md -->\nkept\n<!-- END generated -->\n"
    )
    assert embed(readme) == ["results/table.md"]
    assert readme.read_text() == (
        "## Section\n"
        "<!-- BEGIN generated: results/table.md -->\n### Title\n\n| a |\n|---|\n| 1 |\n"
        "<!-- END generated -->\n"
        "<!-- BEGIN generated: results/missing.md -->\nkept\n<!-- END generated -->\n"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["README.md", "results"]
