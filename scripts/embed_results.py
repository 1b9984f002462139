"""Copy generated result files into README.md between their markers.

A block in the README looks like

    <!-- BEGIN generated: results/bench/summary.md -->
    ...replaced by the file's content...
    <!-- END generated -->

so the figures the README shows are always the ones the scripts wrote, never typed by hand.
Usage: python scripts/embed_results.py [README.md]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from fefm_lab.fileio import atomic_write_text

BLOCK = re.compile(
    r"(<!-- BEGIN generated: (?P<path>[^ ]+) -->\n)(?P<body>.*?)(<!-- END generated -->)",
    re.DOTALL,
)


def demote_headings(markdown: str, levels: int = 2) -> str:
    """Headings of an embedded file sit below the README's own `##` sections."""
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m[1]) + levels) + " ", markdown, flags=re.M)


def embed(readme: Path) -> list[str]:
    """Rewrite `readme` in place; returns the result files embedded (missing ones are kept)."""
    root = readme.parent
    embedded: list[str] = []

    def replace(match: re.Match[str]) -> str:
        source = root / match["path"]
        if not source.is_file():
            return match.group(0)
        embedded.append(match["path"])
        body = demote_headings(source.read_text()).rstrip("\n") + "\n"
        return f"{match.group(1)}{body}{match.group(4)}"

    text = readme.read_text()
    atomic_write_text(readme, BLOCK.sub(replace, text))
    return embedded


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    for path in embed(target):
        print(f"embedded {path} into {target}")
