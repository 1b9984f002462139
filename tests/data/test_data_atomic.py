"""Atomic preparation: an interrupted run leaves nothing trusted; a complete one is reused."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest
from data_helpers import criteo_line, write_text

from fefm_lab.data import prepare

# the package exports the function `prepare`, which shadows the module of the same name
prepare_module = importlib.import_module("fefm_lab.data.prepare")


@pytest.fixture()
def raw(tmp_path):
    lines = [criteo_line(int(i % 3 == 0), [i % 17, i % 5], [f"{i % 41:08x}"]) for i in range(2000)]
    return write_text(tmp_path / "train.txt", lines)


def _config(path):
    # small blocks and shards: many writes, so a failure can land mid-way
    return {"name": "atomic", "format": "criteo", "path": str(path), "min_count": 2,
            "block_bytes": 4096, "shard_rows": 300}  # fmt: skip


def _entries(data_root):
    return sorted(p.name for p in (data_root / "prepared").iterdir() if p.name != ".sources")


def test_exception_mid_write_leaves_nothing_and_next_run_completes(raw, data_root, monkeypatch):
    original = prepare_module._ShardWriter.write
    calls = {"n": 0}

    def failing_write(self, table):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk full (injected)")
        original(self, table)

    monkeypatch.setattr(prepare_module._ShardWriter, "write", failing_write)
    with pytest.raises(OSError, match="injected"):
        prepare(_config(raw), seed=0, data_root=data_root, progress=False)
    assert _entries(data_root) == []
    monkeypatch.setattr(prepare_module._ShardWriter, "write", original)
    data = prepare(_config(raw), seed=0, data_root=data_root, progress=False)
    assert _entries(data_root) == [data.directory.name]
    assert data.manifest["rows_read"] == 2000
    assert sum(data.rows(s) for s in ("train", "validation", "test")) == 2000
    assert len(data.shard_paths("train")) == -(-data.rows("train") // 300)


def test_sigkill_mid_preparation_is_not_trusted_and_is_cleaned_up(raw, data_root):
    script = textwrap.dedent(
        f"""
        import os, signal
        from fefm_lab.data import prepare

        def progress(stage, rows, seconds):
            if "pass 2" in stage and rows > 500:
                os.kill(os.getpid(), signal.SIGKILL)

        prepare({_config(raw)!r}, seed=0, data_root={str(data_root)!r}, progress=progress)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == -9, result.stderr.decode()[-2000:]
    leftovers = _entries(data_root)
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-atomic-")
    assert not (data_root / "prepared" / leftovers[0] / "manifest.json").exists()
    data = prepare(_config(raw), seed=0, data_root=data_root, progress=False)
    assert _entries(data_root) == [data.directory.name]  # the dead run's temp dir is gone
    assert data.manifest["rows_read"] == 2000


def test_complete_preparation_is_reused_without_reading_the_source(raw, data_root, monkeypatch):
    first = prepare(_config(raw), seed=0, data_root=data_root, progress=False)

    def no_reading(*args, **kwargs):
        raise AssertionError("the source was read again")

    monkeypatch.setattr(prepare_module, "open_source", no_reading)
    monkeypatch.setattr(prepare_module, "source_fingerprint", no_reading)
    again = prepare(_config(raw), seed=0, data_root=data_root, progress=False)
    assert again.directory == first.directory
    moved = raw.with_name("moved.txt")
    os.rename(raw, moved)
    gone = prepare(_config(raw), seed=0, data_root=data_root, progress=False)
    assert gone.directory == first.directory
    assert gone.load_split("test")[1].tolist() == first.load_split("test")[1].tolist()


def test_changed_source_or_settings_give_a_new_directory(raw, data_root):
    first = prepare(_config(raw), seed=0, data_root=data_root, progress=False)
    other_seed = prepare(_config(raw), seed=1, data_root=data_root, progress=False)
    assert other_seed.directory != first.directory
    other_count = prepare({**_config(raw), "min_count": 3}, seed=0, data_root=data_root,
                          progress=False)  # fmt: skip
    assert other_count.directory != first.directory
    same_layout_knobs = prepare({**_config(raw), "block_bytes": 1 << 20}, seed=0,
                                data_root=data_root, progress=False)  # fmt: skip
    assert same_layout_knobs.directory == first.directory
    with open(raw, "a") as handle:
        handle.write(criteo_line(1, [1], ["abcdabcd"]) + "\n")
    changed = prepare(_config(raw), seed=0, data_root=data_root, progress=False)
    assert changed.directory != first.directory
    assert changed.manifest["rows_read"] == 2001
    assert changed.manifest["source"]["size"] == raw.stat().st_size
