"""Bytes that are not text: the line is named, skip mode skips, nothing raw reaches the terminal."""

from __future__ import annotations

import gzip
import json
import random
import sys
import zlib

import pytest
from data_helpers import criteo_line, generic_config

from fefm_lab.data import prepare
from fefm_lab.errors import DataError

ROWS = [criteo_line(i % 2, [i, 2 * i], [f"{i % 5:08x}"]) for i in range(300)]


def _criteo(path, **overrides):
    return {"name": "bytes", "format": "criteo", "path": str(path), "min_count": 1, **overrides}


def _prepare(config, data_root):
    return prepare(config, seed=0, data_root=data_root, progress=False)


def _write(path, lines: list[bytes]) -> str:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _with_latin1_row(index: int) -> list[bytes]:
    lines = [row.encode() for row in ROWS]
    lines[index] = lines[index].replace(b"\t", b"\tcaf\xe9", 1)  # Latin-1, not UTF-8
    return lines


@pytest.fixture
def unraisable(monkeypatch) -> list:
    """Exceptions Python would print as "Exception ignored in ..." (pyarrow callbacks)."""
    seen: list = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    return seen


def _nothing_prepared(data_root) -> bool:
    prepared = data_root / "prepared"
    return not prepared.exists() or [p.name for p in prepared.iterdir()] in ([], [".sources"])


@pytest.mark.parametrize("block_bytes", [16 << 20, 2000])
def test_a_row_that_is_not_utf8_is_named_by_its_line(tmp_path, data_root, block_bytes) -> None:
    path = _write(tmp_path / "latin1.txt", _with_latin1_row(209))
    with pytest.raises(DataError) as caught:
        _prepare(_criteo(path, block_bytes=block_bytes), data_root)
    assert str(caught.value).startswith(
        f"{path}, line 210: byte 6 of the line is not UTF-8 text (a binary or differently "
        "encoded file?); expected data rows of 40 columns (label, I1, I2, I3, ...); "
        "the line's bytes: b'1\\tcaf\\xe9209\\t418\\t"
    )
    assert _nothing_prepared(data_root)


def test_skip_drops_and_counts_undecodable_rows(tmp_path, data_root) -> None:
    lines = _with_latin1_row(17)
    lines[250] = b"\xff\xfe" + lines[250]
    path = _write(tmp_path / "latin1.txt", lines)
    data = _prepare(_criteo(path, on_bad_rows="skip", block_bytes=2000), data_root)
    assert data.manifest["rows_read"] == 300 and data.manifest["bad_rows"] == 2
    assert sum(data.rows(split) for split in ("train", "validation", "test")) == 298
    # The other rows keep their row numbers: the same split as the file without those two rows
    # but with its rows numbered as before (the split of a row depends on its index only).
    clean = _write(tmp_path / "clean.txt", [row.encode() for row in ROWS])
    reference = _prepare(_criteo(clean, block_bytes=2000), tmp_path / "reference_root")
    assert data.rows("train") <= reference.rows("train")
    assert reference.rows("train") - data.rows("train") <= 2


def test_binary_file_is_one_clear_error_without_tracebacks(tmp_path, data_root, unraisable):
    path = tmp_path / "photo.jpg"
    path.write_bytes(random.Random(3).randbytes(50_000))
    with pytest.raises(DataError) as caught:
        _prepare(_criteo(path), data_root)
    message = str(caught.value)
    assert message.startswith(f"{path}, line ") and "is not UTF-8 text" in message
    assert message.isprintable()  # bytes shown as \xNN escapes, never raw
    assert unraisable == []
    assert _nothing_prepared(data_root)


def test_header_that_is_not_utf8(tmp_path, data_root) -> None:
    path = _write(tmp_path / "h.tsv", [b"label\tc\xe9\tn", b"1\ta\t3"])
    with pytest.raises(DataError, match=r"h\.tsv, line 1: byte 8 of the line is not UTF-8"):
        _prepare(generic_config(path, categorical=["c\u00e9"]), data_root)


def test_truncated_gzip_names_the_line_its_data_ends_in(tmp_path, data_root) -> None:
    text = "".join(row + "\n" for row in ROWS).encode()
    packed = gzip.compress(text)
    path = tmp_path / "cut.txt.gz"
    path.write_bytes(packed[: len(packed) // 2])
    readable = zlib.decompressobj(wbits=31).decompress(path.read_bytes())  # float64-free ref
    expected_line = readable.count(b"\n") + 1
    assert 1 < expected_line < 300
    with pytest.raises(DataError) as caught:
        _prepare(_criteo(path), data_root)  # one 16 MiB block: the old reader said line 1
    assert str(caught.value).startswith(
        f"{path}, line {expected_line}: the gzip stream is truncated or corrupt in this line"
    )
    assert _nothing_prepared(data_root)
    assert json.dumps(str(caught.value))  # a plain message
