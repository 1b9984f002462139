"""fefm_lab.fileio: the target holds the old or the whole new content, and no partial file stays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fefm_lab.fileio import PARTIAL_SUFFIX, atomic_path, atomic_write_bytes, atomic_write_text


def _names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_text_is_written_whole_and_replaces_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    target.write_text("old")
    assert atomic_write_text(target, "néw\n| a |") == target
    assert target.read_bytes() == "néw\n| a |".encode()
    assert _names(tmp_path) == ["report.md"]


def test_bytes_are_written_exactly_and_parents_are_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "blob.bin"
    payload = bytes(range(256)) * 3
    atomic_write_bytes(target, payload)
    assert target.read_bytes() == payload
    assert _names(target.parent) == ["blob.bin"]


def test_readers_see_the_old_content_until_the_writer_finishes(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    with atomic_path(target) as partial:
        partial.write_text("new\n")
        assert target.read_text() == "old\n"
        assert partial.parent == tmp_path
        assert partial.name.startswith(".table.csv.") and partial.name.endswith(PARTIAL_SUFFIX)
    assert target.read_text() == "new\n"
    assert _names(tmp_path) == ["table.csv"]


def test_a_failing_writer_keeps_the_old_file_and_removes_its_partial(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    target.write_text('{"rows": 10}')
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as partial:
        partial.write_text('{"ro')
        raise RuntimeError("disk full")
    assert target.read_text() == '{"rows": 10}'
    assert _names(tmp_path) == ["manifest.json"]


def test_a_writer_that_writes_nothing_is_an_error_not_an_empty_file(tmp_path: Path) -> None:
    target = tmp_path / "chart.png"
    with pytest.raises(FileNotFoundError, match="did not create"), atomic_path(target):
        pass
    assert _names(tmp_path) == []


def test_path_writers_such_as_numpy_save_go_through_the_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "weights.npy"
    values = np.arange(6, dtype=np.float64).reshape(2, 3) / 7
    with atomic_path(target) as partial, open(partial, "wb") as stream:
        np.save(stream, values)
    np.testing.assert_array_equal(np.load(target), values)


def test_interleaved_writers_each_have_their_own_partial_and_the_last_rename_wins(
    tmp_path: Path,
) -> None:
    target = tmp_path / "index.json"
    with atomic_path(target) as first:
        with atomic_path(target) as second:
            assert first != second
            first.write_text("first")
            second.write_text("second")
        assert target.read_text() == "second"
    assert target.read_text() == "first"
    assert _names(tmp_path) == ["index.json"]
