"""Published MD5 checksums of a benchmark's split files, checked before anything is prepared."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from fefm_lab.errors import DataError

LOG = logging.getLogger("fefm_lab.data")
_BLOCK = 8 << 20


def file_md5(path: Path) -> str:
    """Hex MD5 of the file's bytes (as `md5sum` prints it)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def verify_md5(paths: list[Path], expected: tuple[str, ...]) -> None:
    """Raise DataError naming the first file whose MD5 is not the published one."""
    for path, want in zip(paths, expected, strict=True):
        LOG.info("checking the MD5 of %s", path)
        found = file_md5(path)
        if found != want:
            raise DataError(
                f"{path}: MD5 {found} is not the published {want} (dataset.md5); the file is "
                "damaged, incomplete or another version: download it again (or set "
                "dataset.md5=null to prepare it anyway)"
            )
