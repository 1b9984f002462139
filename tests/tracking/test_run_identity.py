"""Run identity: code version ignores comments and formatting; data fingerprint is content."""

from __future__ import annotations

import copy

from fefm_lab.tracking.confighash import (
    CODE_VERSION_MODULES,
    current_code_version,
    data_fingerprint,
    source_version,
)

ORIGINAL = '''"""Module docstring."""

def scale(x, factor=2.0):
    """Multiply."""
    return x * factor  # the maths
'''
REFORMATTED = """# a comment at the top
def scale(x, factor = 2.0):
    return (
        x *
        factor
    )
"""
OTHER_MATHS = '''"""Module docstring."""

def scale(x, factor=3.0):
    """Multiply."""
    return x * factor
'''

MANIFEST = {
    "source": {
        "path": "/data/a/train.txt",
        "size": 1000,
        "mtime_ns": 1,
        "head_sha256": "aa",
        "tail_sha256": "bb",
    },
    "settings": {"split": "random", "split_seed": 1},
    "layout_version": 1,
    "rows_read": 40,
    "bad_rows": 0,
    "splits": {
        "train": {"rows": 32, "positives": 7, "shards": ["train/part-00000.arrow"]},
        "validation": {"rows": 4, "positives": 1, "shards": []},
        "test": {"rows": 4, "positives": 1, "shards": []},
    },
}


def test_code_version_ignores_docstrings_comments_and_formatting() -> None:
    assert source_version(ORIGINAL) == source_version(REFORMATTED)
    assert source_version(ORIGINAL) != source_version(OTHER_MATHS)
    # A function whose body is only a docstring stays a function (not an empty body).
    assert source_version('def f():\n    """doc"""\n') == source_version("def f():\n    pass\n")


def test_code_version_covers_the_maths_modules() -> None:
    assert "fefm_lab.model" in CODE_VERSION_MODULES
    assert "fefm_lab.training.loop" in CODE_VERSION_MODULES
    assert len(current_code_version()) == 16
    assert current_code_version() == current_code_version(CODE_VERSION_MODULES)
    fewer = tuple(m for m in CODE_VERSION_MODULES if m != "fefm_lab.layers")
    assert current_code_version(fewer) != current_code_version()


def test_data_fingerprint_is_content_not_path_or_mtime() -> None:
    moved = copy.deepcopy(MANIFEST)
    moved["source"].update(path="/elsewhere/copy.txt", mtime_ns=2)
    moved["splits"]["train"]["shards"] = ["train/part-00000.arrow", "train/part-00001.arrow"]
    assert data_fingerprint(moved) == data_fingerprint(MANIFEST)
    assert len(data_fingerprint(MANIFEST)) == 16
    for change in (
        lambda m: m["source"].update(head_sha256="cc"),
        lambda m: m["source"].update(tail_sha256="cc"),
        lambda m: m["source"].update(size=1001),
        lambda m: m["splits"]["train"].update(positives=8),
        lambda m: m["settings"].update(split_seed=2),
    ):
        other = copy.deepcopy(MANIFEST)
        change(other)
        assert data_fingerprint(other) != data_fingerprint(MANIFEST)
