"""Bad raw input: one DataError naming file, line and content; no prepared directory left."""

from __future__ import annotations

import gzip
import json

import pytest
from data_helpers import criteo_line, write_text

from fefm_lab.data import prepare
from fefm_lab.data.layout import AVAZU_COLUMNS
from fefm_lab.errors import DataError

GOOD = [criteo_line(i % 2, [i, 2 * i], [f"{i:08x}"]) for i in range(8)]


def _criteo(path, **overrides):
    return {"name": "bad", "format": "criteo", "path": str(path), "min_count": 1, **overrides}


def _prepare(config, data_root, **kwargs):
    return prepare(config, seed=0, data_root=data_root, progress=False, **kwargs)


def _assert_nothing_prepared(data_root):
    prepared = data_root / "prepared"
    leftovers = (
        [p.name for p in prepared.iterdir() if p.name != ".sources"] if prepared.exists() else []
    )
    assert leftovers == []


def _expect(config, data_root, *fragments):
    with pytest.raises(DataError) as caught:
        _prepare(config, data_root)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    _assert_nothing_prepared(data_root)
    return message


def test_missing_file(tmp_path, data_root):
    path = tmp_path / "nope.txt"
    _expect(_criteo(path), data_root, f"{path}: no such file")


def test_empty_file(tmp_path, data_root):
    path = write_text(tmp_path / "empty.txt", [])
    _expect(_criteo(path), data_root, str(path), "empty")


def test_wrong_number_of_columns(tmp_path, data_root):
    short = "\t".join(criteo_line(1).split("\t")[:39])
    path = write_text(tmp_path / "t.txt", [*GOOD[:4], short, *GOOD[4:]])
    message = _expect(
        _criteo(path), data_root, str(path), "line 5", "expected 40 columns, found 39"
    )
    assert repr(short[:20])[1:-1] in message


def test_non_integer_in_integer_field(tmp_path, data_root):
    bad = criteo_line(0, [3, "x7"], ["deadbeef"])
    path = write_text(tmp_path / "t.txt", [*GOOD[:6], bad, *GOOD[6:]])
    _expect(_criteo(path), data_root, str(path), "line 7", "column I2 must hold an integer", "x7")


def test_label_outside_0_1(tmp_path, data_root):
    bad = criteo_line(2, [1], ["cafecafe"])
    path = write_text(tmp_path / "t.txt", [*GOOD, bad])
    _expect(
        _criteo(path), data_root, str(path), "line 9", "label (label) must be 0 or 1", "cafecafe"
    )


def test_label_not_a_number(tmp_path, data_root):
    bad = criteo_line("yes", [1], ["cafecafe"])
    path = write_text(tmp_path / "t.txt", [*GOOD[:2], bad])
    _expect(_criteo(path), data_root, "line 3", "column label must hold an integer", "yes")


def test_error_in_a_later_block_names_the_absolute_line(tmp_path, data_root):
    lines = [criteo_line(i % 2, [i], [f"{i:08x}"]) for i in range(300)]
    lines[250] = criteo_line(5, [1])
    path = write_text(tmp_path / "t.txt", lines)
    _expect(_criteo(path, block_bytes=1000), data_root, "line 251", "must be 0 or 1")


def test_avazu_header_mismatch(tmp_path, data_root):
    header = ",".join(c if c != "hour" else "hours" for c in AVAZU_COLUMNS)
    path = write_text(tmp_path / "train.csv", [header])
    config = {"name": "a", "format": "avazu", "path": str(path)}
    _expect(config, data_root, str(path), "line 1", "header does not match", "hours")


def test_avazu_bad_hour(tmp_path, data_root):
    row = ["1", "0", "14102125", *["x"] * 21]
    path = write_text(tmp_path / "train.csv", [",".join(AVAZU_COLUMNS), ",".join(row)])
    config = {"name": "a", "format": "avazu", "path": str(path)}
    _expect(config, data_root, "line 2", "hour must be YYMMDDHH", "14102125")


def test_truncated_gzip(tmp_path, data_root):
    lines = [criteo_line(i % 2, [i], [f"{i * 7919:08x}"]) for i in range(3000)]
    payload = gzip.compress("".join(line + "\n" for line in lines).encode())
    path = tmp_path / "train.txt.gz"
    path.write_bytes(payload[: len(payload) // 2])
    _expect(_criteo(path, block_bytes=4096), data_root, str(path), "gzip stream is truncated")


def test_gzip_file_reads_like_plain(tmp_path, data_root):
    text = "".join(line + "\n" for line in GOOD)
    plain = tmp_path / "train.txt"
    plain.write_text(text)
    packed = tmp_path / "train.txt.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    a = _prepare(_criteo(plain, split_seed=3), data_root)
    b = _prepare(_criteo(packed, split_seed=3), data_root)
    for split in ("train", "validation", "test"):
        fa, la = a.load_split(split)
        fb, lb = b.load_split(split)
        assert la.tolist() == lb.tolist()
        assert all((fa[k] == fb[k]).all() for k in fa)


def test_skip_counts_bad_rows_and_keeps_row_numbers(tmp_path, data_root):
    short = "\t".join(criteo_line(1).split("\t")[:20])
    lines = [*GOOD[:3], short, criteo_line(7, [1]), *GOOD[3:6], criteo_line(1, ["1.5"]), *GOOD[6:]]
    path = write_text(tmp_path / "t.txt", lines)
    data = _prepare(_criteo(path, on_bad_rows="skip"), data_root)
    manifest = json.loads((data.directory / "manifest.json").read_text())
    assert manifest["bad_rows"] == 3
    assert manifest["rows_read"] == 11
    kept = sum(data.rows(s) for s in ("train", "validation", "test"))
    assert kept == 8
    assert sum(data.positives(s) for s in ("train", "validation", "test")) == 4


def test_header_only_file_has_no_data(tmp_path, data_root):
    path = write_text(tmp_path / "train.csv", [",".join(AVAZU_COLUMNS)])
    config = {"name": "a", "format": "avazu", "path": str(path)}
    _expect(config, data_root, str(path), "a header but no data rows")


def test_skipped_rows_keep_their_row_numbers_in_the_split(tmp_path, data_root):
    lines = [criteo_line(i % 2, [i], [f"{i:08x}"]) for i in range(10)]
    lines[3] = criteo_line(9, [3])
    path = write_text(tmp_path / "t.txt", lines)
    config = _criteo(path, on_bad_rows="skip", split="sequential", split_fractions=[0.6, 0.2, 0.2])
    data = _prepare(config, data_root)
    # rows 0-5 train (row 3 dropped), 6-7 validation, 8-9 test
    assert [data.rows(s) for s in ("train", "validation", "test")] == [5, 2, 2]
    assert data.load_split("train")[1].tolist() == [0, 1, 0, 0, 1]
    assert data.manifest["bad_rows"] == 1


def test_parquet_source_and_its_bad_rows(tmp_path, data_root):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"y": [0, 1, 1, 0], "c": ["a", "b", "a", None], "n": [1.0, 2.0, None, 4.0]})
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    config = {"name": "p", "format": "generic", "file_type": "parquet", "path": str(path)}
    config |= {"label": "y", "categorical": ["c"], "numeric": ["n"], "min_count": 1}
    config |= {"split": "sequential", "split_fractions": [1.0, 0.0, 0.0]}
    data = _prepare(config, data_root)
    features, labels = data.load_split("train")
    assert labels.tolist() == [0, 1, 1, 0]
    assert features["c"].ravel().tolist() == [2, 3, 2, 1]
    assert features["n"].ravel().tolist() == [2, 3, 1, 4]
    pq.write_table(table.set_column(0, "y", pa.array([0, 1, 3, 0])), path)
    message = _expect(config, tmp_path / "other_root", str(path), "row 3", "must be 0 or 1")
    assert "'y': 3" in message
