"""Run identity: code version ignores comments and formatting; data fingerprint is content."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fefm_lab.tracking.confighash import (
    CODE_VERSION_KERNELS,
    CODE_VERSION_MODULES,
    code_tokens,
    cpp_code_tokens,
    current_code_version,
    data_fingerprint,
    kernel_source_version,
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


# (before, after) pairs that only format: what a formatter, a comment or a docstring changes
COSMETIC = [
    ("x = a + b\n", "x = (\n    a\n    + b\n)\n"),  # a long right-hand side wrapped
    ("if a and b:\n    pass\n", "if (\n    a\n    and b\n):\n    pass\n"),
    ("y = f(a, b)\n", "y = f(\n    a,\n    b,\n)\n"),  # magic trailing comma
    ("y = f(a)\n", "y = f(\n    a,\n)\n"),
    ("def g(a, b):\n    pass\n", "def g(\n    a,\n    b,\n):\n    pass\n"),
    ("v = [1, 2]\n", "v = [\n    1,\n    2,\n]\n"),
    ("v = [1]\n", "v = [\n    1,\n]\n"),
    ("d = {'k': 1}\n", 'd = {\n    "k": 1,\n}\n'),  # quote style and a trailing comma
    ("t = (1, 2)\n", "t = (1, 2,)\n"),
    ("s = b'\\x41'\n", 's = b"A"\n'),  # the same bytes, another spelling
    ("x = a + \\\n    b\n", "x = a + b\n"),  # a backslash continuation
    ("if a:\n  x = 1\n  y = 2\n", "if a:\n\n    x = 1  # one\n\n    y = 2\n"),  # indent width
    ("x = 1\n", '"""Module docstring."""\n\n# a comment\nx = 1\n'),
    ("class C:\n    x = 1\n", 'class C:\n    """Doc."""\n\n    x = 1\n'),
    ("return_value = f(x)\n", "return_value = f(x)  # noqa: E501\n"),
    ("m = f'{a}'\n", "m = f'{a}'  # the f-string itself is unchanged\n"),
]

# (before, after) pairs that change what the code computes
MATHS = [
    ("x = a + b\n", "x = a - b\n"),  # an operator
    ("x = a * 2.0\n", "x = a * 3.0\n"),  # a constant
    ("x = a * 2.0\n", "x = a * 2\n"),  # a float became an int
    ("x = f(a)\n", "x = g(a)\n"),  # a name
    ("raise ValueError('bad row')\n", "raise ValueError('bad line')\n"),  # an error message
    ("if a:\n    x = 1\n    y = 2\n", "if a:\n    x = 1\ny = 2\n"),  # a statement left its block
    ("t = (a,)\n", "t = (a)\n"),  # a one-element tuple is not its element
    ("v = x[a,]\n", "v = x[a]\n"),  # indexing with a tuple is not indexing with its element
    ("x = 1\n", "x = 1\ny = 'doc'\n"),  # an assignment of a string is code, not a docstring
    ("m = f'{a}'\n", "m = f'{b}'\n"),  # an f-string's expression
    ("m = f'{a}'\n", "m = f'{a!r}'\n"),
]


@pytest.mark.parametrize(("before", "after"), COSMETIC)
def test_code_version_is_unchanged_by_formatting(before: str, after: str) -> None:
    assert code_tokens(before) == code_tokens(after)
    assert source_version(before) == source_version(after)


@pytest.mark.parametrize(("before", "after"), MATHS)
def test_code_version_changes_with_the_code(before: str, after: str) -> None:
    assert source_version(before) != source_version(after)


def test_code_version_is_the_tokens_not_an_ast_dump() -> None:
    """Pinned: the tokens and digest of a fixed snippet (no ast.dump format, no Python version)."""
    assert code_tokens(ORIGINAL) == [
        "def", "scale", "(", "x", ",", "factor", "=", "2.0", ")", ":", "<newline>",
        "<indent>", "return", "x", "*", "factor", "<newline>", "<dedent>",
    ]  # fmt: skip
    encoded = json.dumps(code_tokens(ORIGINAL), separators=(",", ":"))
    assert source_version(ORIGINAL) == (
        "477d7740d00e1afb5a8e6bac13c7b04ef014f6e887b912e6af62697f68c6770a"
    )
    assert source_version(ORIGINAL) == hashlib.sha256(encoded.encode()).hexdigest()


def _other_pythons() -> list[str]:
    """Python >= 3.11 interpreters on this machine other than the running one (PATH, pyenv)."""
    candidates = [shutil.which(f"python3.{minor}") for minor in range(11, 16)]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += [str(p) for p in sorted(pyenv.glob("3.1[1-9]*/bin/python3"))]
    found = {}
    for path in filter(None, candidates):
        probe = subprocess.run(
            [path, "-c", "import sys; print(sys.version_info >= (3, 11), sys.version_info[:2])"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if probe.returncode == 0 and probe.stdout.startswith("True"):
            version = probe.stdout.split(None, 1)[1].strip()
            if version != str(tuple(sys.version_info[:2])):
                found.setdefault(version, path)
    return list(found.values())


def test_code_version_is_the_same_on_other_pythons() -> None:
    """The module alone (standard library only) under each other Python found gives the same
    digests for the snippet and for fefm-lab's own maths modules."""
    pythons = _other_pythons()
    if not pythons:
        pytest.skip("no other Python >= 3.11 on this machine")
    module = Path(sys.modules[source_version.__module__].__file__)
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('confighash', {str(module)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        f"print(m.source_version({ORIGINAL!r}), m.current_code_version())\n"
    )
    expected = f"{source_version(ORIGINAL)} {current_code_version()}"
    for python in pythons:
        result = subprocess.run([python, "-c", script], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected, python


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


KERNEL = """
// s = v_i W_p, one row at a time
static inline float dot(const float* a, const float* b, int k) {
  float sum = 0.0f;  /* lanes */
  for (int i = 0; i < k; ++i) sum += a[i] * b[i];
  return sum;
}
const char* kName = "FefmScores // not a comment";
"""


def test_kernel_source_version_ignores_comments_and_layout_not_code() -> None:
    cosmetic = (
        KERNEL.replace("// s = v_i W_p, one row at a time", "// reworded"),
        KERNEL.replace("/* lanes */", ""),
        KERNEL.replace("(int i = 0; i < k; ++i)", "(int i = 0;\n       i < k;\n       ++i)"),
        KERNEL.replace("{\n  float", "{\n\n\tfloat"),
    )
    for edit in cosmetic:
        assert edit != KERNEL
        assert kernel_source_version(edit) == kernel_source_version(KERNEL), edit
    maths = (
        KERNEL.replace("a[i] * b[i]", "a[i] + b[i]"),
        KERNEL.replace("0.0f", "1.0f"),
        KERNEL.replace("i < k", "i <= k"),
        KERNEL.replace("not a comment", "a comment"),  # inside a string literal
    )
    for edit in maths:
        assert kernel_source_version(edit) != kernel_source_version(KERNEL), edit
    assert cpp_code_tokens('x = "a//b"; // c\ny /* d */ += 1;') == [
        "x", "=", '"a//b"', ";", "y", "+", "=", "1", ";"
    ]  # fmt: skip


def test_code_version_covers_the_kernel_sources() -> None:
    kernel_dir = Path(__file__).resolve().parents[2] / "fefm_lab" / "kernels"
    assert {name: (kernel_dir / f"{name}.cc").is_file() for name in CODE_VERSION_KERNELS} == {
        name: True for name in CODE_VERSION_KERNELS
    }
    assert set(CODE_VERSION_KERNELS) == {p.stem for p in kernel_dir.glob("*.cc")}
    assert current_code_version(kernels=CODE_VERSION_KERNELS[:1]) != current_code_version()
