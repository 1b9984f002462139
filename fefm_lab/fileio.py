"""Atomic file writes: a reader sees the old file or the whole new one, never half of one.

Every writer goes to a hidden sibling `.<name>.<random>.partial` (same directory, so the same
filesystem), which is flushed to disk and then renamed over the target with `os.replace`, atomic
on POSIX and Windows. A killed writer leaves at most that hidden partial file, which no reader
trusts; an exception removes it. Concurrent writers each have their own partial file and the last
rename wins.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


def partial_path_for(path: Path) -> Path:
    """A fresh hidden sibling of `path` to write to before the rename."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on a clean exit it replaces `path`, else it is removed.

    For writers that take a path (`DataFrame.to_csv`, `Figure.savefig`, `np.save`, a pyarrow
    stream). Creates `path`'s parent directory. The written file is fsynced before the rename, so
    after a crash `path` holds the old or the new content, not an empty file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path_for(path)
    try:
        yield partial
        if not partial.is_file():
            raise FileNotFoundError(f"the writer for {path} did not create {partial}")
        _fsync(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (see the module docstring); return `path`."""
    path = Path(path)
    with atomic_path(path) as partial, open(partial, "xb") as stream:
        stream.write(data)
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically (see the module docstring); return `path`."""
    return atomic_write_bytes(path, text.encode(encoding))


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
