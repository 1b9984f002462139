"""Run identity: which runs are "the same configuration" (for skipping and resuming).

`config_hash` covers what changes a run's results and nothing else:

- the resolved `dataset`, `model`, `trainer` and `seed` config, minus `SPEED_ONLY_KEYS` (settings
  that change how fast, not what, a run computes; the raw file's path is among them);
- the prepared data's content fingerprint (`data_fingerprint`), in place of the path string;
- the code version of the maths (`code_version`): the tokens of the modules
  `CODE_VERSION_MODULES`, normalised (`code_tokens`) and hashed. Comments, docstrings, blank
  lines, line breaks, indentation width, quote style and the parentheses or trailing commas a
  formatter adds or removes do not change it; any change to the code (a name, a constant, an
  operator, a statement, an error message) in those modules does. It is the same on every
  Python >= 3.11 (tokens, unlike `ast.dump`, do not change with the Python version). The C++
  kernels' sources (`CODE_VERSION_KERNELS`) count the same way: their tokens without comments
  or layout (`cpp_code_tokens`).

Whether a run took a compiled kernel or the TensorFlow ops is not part of the identity: the two
compute the same maths (the float sums in another order), like two thread counts. Each run's tags
say which path it took (`fefm_path`, `optimizer_path`).
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import keyword
import re
import tokenize
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from fefm_lab.config.ablation import seed_stream

# What decides a run's numbers. Tracking, paths, sweep bookkeeping and threads do not.
HASHED_KEYS = ("dataset", "model", "trainer", "seed")
# Settings that only change speed or what is printed, never a result. dataset.path: the data
# enters through its content fingerprint, so a moved file is the same data and a replaced one
# is not.
SPEED_ONLY_KEYS = frozenset(
    {
        ("dataset", "path"),
        ("dataset", "block_bytes"),
        ("dataset", "shard_rows"),
        ("trainer", "verbose"),
        ("trainer", "eval_batch_size"),
        # how a run is watched, checkpointed and placed: not what it computes
        ("trainer", "progress"),
        ("trainer", "progress_every_seconds"),
        ("trainer", "checkpoint_every_minutes"),
        ("trainer", "checkpoint_max_time_share"),
        ("trainer", "keep_checkpoints"),
        ("trainer", "log_every_steps"),
        ("trainer", "device"),
    }
)
# The modules whose code computes a run's numbers: raw bytes -> prepared data -> model ->
# training -> metrics. The tracking, report and command-line modules are not among them.
CODE_VERSION_MODULES = (
    "fefm_lab.data.encode",
    "fefm_lab.data.feature_map",
    "fefm_lab.data.input",
    "fefm_lab.data.keys",
    "fefm_lab.data.layout",
    "fefm_lab.data.prepare",
    "fefm_lab.data.prepared",
    "fefm_lab.data.reader",
    "fefm_lab.data.split",
    "fefm_lab.data.synthetic",
    "fefm_lab.data.vocab",
    "fefm_lab.features",
    "fefm_lab.kernels.fefm_interaction",
    "fefm_lab.layers",
    "fefm_lab.model",
    "fefm_lab.config.trainer",
    "fefm_lab.training.divergence",
    "fefm_lab.training.loop",
    "fefm_lab.training.metrics",
    "fefm_lab.training.optimizer",
)

# The compiled kernels (fefm_lab/kernels/<name>.cc) that compute the same numbers as those modules.
CODE_VERSION_KERNELS = ("fefm_interaction", "row_sparse_adagrad")


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}, "c": [1, 2]}` -> `{"a.b": 1, "c": [1, 2]}` (lists stay leaves)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def _without_speed_only(values: Mapping[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in values.items():
        here = (*path, key)
        if here in SPEED_ONLY_KEYS:
            continue
        kept[key] = _without_speed_only(value, here) if isinstance(value, Mapping) else value
    return kept


def hashed_part(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that the hash covers; a seed stream other than 0 (the
    `control` ablation) counts too, and only then, so stream-0 hashes stay what they were."""
    part = _without_speed_only({key: resolved.get(key) for key in HASHED_KEYS})
    stream = seed_stream(resolved)
    return part | ({"seed_stream": stream} if stream else {})


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _content_keys(source: Mapping[str, Any]) -> Any:
    """Size and head/tail SHA-256 of the raw file, or of each file of a published split."""
    if "files" in source:
        return [_content_keys(file) for file in source["files"]]
    return {key: source[key] for key in ("size", "head_sha256", "tail_sha256")}


def data_fingerprint(manifest: Mapping[str, Any]) -> str:
    """Content fingerprint of a prepared dataset, from its manifest (no byte of data is read).

    Covers the raw source's size and the SHA-256 of its first and last MiB (what `prepare`
    fingerprints; of each file, for a benchmark's published split), the settings that shaped the
    prepared content, and the row and click counts per split; not the source's path or
    modification time, so a copied or moved file is the same data. Two files of equal size whose
    first and last MiB and per-split counts agree are taken for the same data.
    """
    source = manifest["source"]
    return _digest(
        {
            "source": _content_keys(source),
            "settings": manifest["settings"],
            "layout_version": manifest.get("layout_version"),
            "rows_read": manifest.get("rows_read"),
            "bad_rows": manifest.get("bad_rows"),
            "splits": {
                split: {key: stats.get(key) for key in ("rows", "positives")}
                for split, stats in manifest["splits"].items()
            },
        }
    )


# Tokens that only lay out code: comments, blank lines, continuation lines, the file's end.
_LAYOUT = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
_BLOCK = {tokenize.NEWLINE: "<newline>", tokenize.INDENT: "<indent>", tokenize.DEDENT: "<dedent>"}
_STATEMENT_START = {"<newline>", "<indent>", "<dedent>", ";"}
_CLOSING = {")": "(", "]": "[", "}": "{"}
# Where a parenthesised expression is a whole statement part, its parentheses are redundant:
# after these tokens and followed by the end of the statement (or `:` after if/elif/while).
_ASSIGNING = {"=", "+=", "-=", "*=", "/=", "//=", "%=", "**=", "@=", "&=", "|=", "^=", ">>=",
              "<<=", "return"}  # fmt: skip
_CONDITION = {"if", "elif", "while"}


def _raw_tokens(source: str) -> list[tuple[str, str]]:
    """(kind, text) per token, layout dropped; an f-string (several tokens from Python 3.12 on,
    one before) is one STRING of its source text."""
    offsets = [0]
    for line in io.StringIO(source).readlines():  # the lines tokenize numbers
        offsets.append(offsets[-1] + len(line))

    def text_between(start: tuple[int, int], end: tuple[int, int]) -> str:
        return source[offsets[start[0] - 1] + start[1] : offsets[end[0] - 1] + end[1]]

    tokens: list[tuple[str, str]] = []
    nested: list[tuple[int, int]] = []  # start positions of open f-strings (3.12+)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        name = tokenize.tok_name[token.type]
        if name.endswith("STRING_START"):  # FSTRING_START (3.12), TSTRING_START (3.14)
            nested.append(token.start)
        elif name.endswith("STRING_END"):
            start = nested.pop()
            if not nested:
                tokens.append(("STRING", text_between(start, token.end)))
        elif nested or token.type in _LAYOUT:
            continue
        elif token.type in _BLOCK:
            tokens.append(("BLOCK", _BLOCK[token.type]))
        elif token.type == tokenize.STRING:
            tokens.append(("STRING", token.string))
        else:
            tokens.append((name if token.type != tokenize.OP else "OP", token.string))
    return tokens


def _without_docstrings(tokens: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Statements made only of string literals (docstrings; they compute nothing) dropped; a
    block left empty gets `pass` (the code it stands for)."""
    kept: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        at_start = not kept or kept[-1][1] in _STATEMENT_START
        j = i
        while j < len(tokens) and tokens[j][0] == "STRING":
            j += 1
        if at_start and j > i and j < len(tokens) and tokens[j][1] in ("<newline>", ";"):
            i = j + 1
            continue
        if tokens[i][1] == "<dedent>" and kept and kept[-1][1] == "<indent>":
            kept += [("NAME", "pass"), ("BLOCK", "<newline>")]
        kept.append(tokens[i])
        i += 1
    return kept


def _string_value(text: str) -> str:
    """A plain string or bytes literal by its value (quote style and escapes do not count); an
    f-string by its source text."""
    prefix = text[: len(text) - len(text.lstrip("rRbBuUfFtT"))].lower()
    if "f" in prefix or "t" in prefix:
        return text
    return repr(ast.literal_eval(text))


def _matching_brackets(tokens: list[tuple[str, str]]) -> dict[int, int]:
    """Index of each opening bracket -> index of its closing one."""
    pairs, stack = {}, []
    for i, (kind, text) in enumerate(tokens):
        if kind == "OP" and text in "([{":
            stack.append(i)
        elif kind == "OP" and text in _CLOSING and stack:
            pairs[stack.pop()] = i
    return pairs


def _top_level_commas(tokens: list[tuple[str, str]], start: int, end: int) -> int:
    depth, commas = 0, 0
    for kind, text in tokens[start + 1 : end]:
        if kind == "OP" and text in "([{":
            depth += 1
        elif kind == "OP" and text in _CLOSING:
            depth -= 1
        elif depth == 0 and (kind, text) == ("OP", ","):
            commas += 1
    return commas


def _is_call_or_subscript(tokens: list[tuple[str, str]], opening: int) -> bool:
    """Whether the bracket at `opening` follows an expression (a call, a def's parameters, a
    subscript) rather than starting a display or a parenthesised expression."""
    if opening == 0:
        return False
    kind, text = tokens[opening - 1]
    if kind == "NAME":
        return not (keyword.iskeyword(text) or keyword.issoftkeyword(text))
    return kind in ("STRING", "NUMBER") or text in (")", "]", "}")


def _formatting_dropped(tokens: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Trailing commas and statement-level parentheses that cannot change the code dropped.

    A comma before a closing bracket is dropped when the bracket holds another top-level comma,
    closes a call or a def's parameters, or closes a list, set or dict display (not `(a,)` nor
    `x[a,]`, which are tuples). Parentheses around a whole right-hand side, return value or
    if/elif/while condition are dropped unless they make a tuple (a comma, or nothing inside).
    """
    pairs = _matching_brackets(tokens)
    dropped: set[int] = set()
    for opening, closing in pairs.items():
        bracket = tokens[opening][1]
        commas = _top_level_commas(tokens, opening, closing)
        if closing - 1 > opening and tokens[closing - 1] == ("OP", ","):
            after_expression = _is_call_or_subscript(tokens, opening)
            if (
                commas > 1
                or (bracket == "(" and after_expression)
                or (bracket == "[" and not after_expression)
                or bracket == "{"
            ):
                dropped.add(closing - 1)
                commas -= 1
        if bracket != "(" or commas or closing == opening + 1 or opening == 0:
            continue
        before = tokens[opening - 1][1]
        after = tokens[closing + 1][1] if closing + 1 < len(tokens) else "<newline>"
        if (before in _ASSIGNING and after in ("<newline>", ";")) or (
            before in _CONDITION and after == ":"
        ):
            dropped.update((opening, closing))
    return [token for i, token in enumerate(tokens) if i not in dropped]


def code_tokens(source: str) -> list[str]:
    """A module's code as tokens without what only formats it: comments, blank lines, line
    continuations, indentation width (blocks stay, as markers), docstrings, quote style, and
    the redundant parentheses and trailing commas of `_formatting_dropped`. Each token is its
    text; a string literal is its value's repr."""
    tokens = _formatting_dropped(_without_docstrings(_raw_tokens(source)))
    return [_string_value(text) if kind == "STRING" else text for kind, text in tokens]


def source_version(source: str) -> str:
    """sha256 of a module's `code_tokens` (JSON list: unambiguous whatever the tokens hold)."""
    encoded = json.dumps(code_tokens(source), ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


# A C++ token: a string or character literal (escapes included), a name or number, or one
# punctuation character; comments are matched first so that they can be dropped.
_CPP_TOKEN = re.compile(
    r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|[A-Za-z_0-9.]+|\S',
    re.DOTALL,
)


def cpp_code_tokens(source: str) -> list[str]:
    """A C++ source as tokens without comments, whitespace or line breaks: reformatting or
    recommenting a kernel keeps them, any change to a name, number, literal or operator does not.
    (A `//` inside a string stays part of the string: literals are matched as whole tokens.)"""
    return [t for t in _CPP_TOKEN.findall(source) if not t.startswith(("//", "/*"))]


def kernel_source_version(source: str) -> str:
    """sha256 of a C++ kernel's `cpp_code_tokens`."""
    encoded = json.dumps(cpp_code_tokens(source), ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


@cache
def current_code_version(
    modules: tuple[str, ...] = CODE_VERSION_MODULES,
    kernels: tuple[str, ...] = CODE_VERSION_KERNELS,
) -> str:
    """Combined `source_version` of the modules and `kernel_source_version` of the kernels (first
    16 hex digits); absent files count too.

    Files are read from the installed package without importing them (no TensorFlow start).
    """
    package = Path(__file__).resolve().parent.parent
    parts: dict[str, str | None] = {}
    for name in modules:
        path = package.joinpath(*name.split(".")[1:]).with_suffix(".py")
        parts[name] = source_version(path.read_text(encoding="utf-8")) if path.is_file() else None
    for name in kernels:
        path = package / "kernels" / f"{name}.cc"
        text = path.read_text(encoding="utf-8") if path.is_file() else None
        parts[f"kernels/{name}.cc"] = kernel_source_version(text) if text is not None else None
    return _digest(parts)


def config_hash(
    resolved: Mapping[str, Any], *, data_fingerprint: str, code_version: str | None = None
) -> str:
    """sha256 (first 16 hex digits) of `hashed_part(resolved)`, the data and the code version.

    Two configs that run the same computation on the same data with the same code get the same
    hash whatever their tracking, output or speed settings, so a repeated sweep can skip them.
    `code_version` defaults to the running code's.
    """
    version = code_version if code_version is not None else current_code_version()
    return _digest(
        {"config": hashed_part(resolved), "data": data_fingerprint, "code_version": version}
    )


class RunIdentity(NamedTuple):
    """What makes two runs "the same configuration": their `config_hash`, and the data
    fingerprint and code version it covers (a NamedTuple: this module loads on its own, without
    the package, for the other-Pythons check)."""

    config_hash: str
    data_fingerprint: str
    code_version: str


def run_identity(resolved: Mapping[str, Any], manifest: Mapping[str, Any]) -> RunIdentity:
    """The identity of a run of `resolved` on the prepared data whose manifest is given."""
    data = data_fingerprint(manifest)
    code = current_code_version()
    return RunIdentity(config_hash(resolved, data_fingerprint=data, code_version=code), data, code)
