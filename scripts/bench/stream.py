"""Cold streaming of prepared shards through the input pipeline.

"Larger than memory", honestly on one machine: the train split is larger than the pipeline's
memory budget (`memory_budget_bytes`), so `train_dataset` streams its shards instead of loading
them; the shards' pages are dropped from the page cache first (posix_fadvise DONTNEED), so every
byte is read from disk; and the resident memory the pipeline adds while it streams is sampled
and reported beside the split's size. The split itself is smaller than the machine's RAM.
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    """This process's resident set now (anonymous and file-backed pages)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def drop_page_cache(paths: list[Path]) -> None:
    """Evict the files' clean pages from the page cache, so the next read goes to disk."""
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


def stream_one_epoch(data, batch_size: int, budget_bytes: int, seed: int = 0) -> dict:
    """One epoch of `train_dataset` streaming cold shards: samples/s and resident growth."""
    from fefm_lab.data.input import train_dataset

    paths = data.shard_paths("train")
    split_bytes = data.rows("train") * data.row_bytes()
    if split_bytes <= budget_bytes:
        raise ValueError(
            f"the train split ({split_bytes:,} bytes) fits the budget ({budget_bytes:,} bytes): "
            "the pipeline would load it instead of streaming; use more rows or a smaller budget"
        )
    dataset = train_dataset(data, batch_size, seed, memory_budget_bytes=budget_bytes)
    gc.collect()
    drop_page_cache(paths)
    before = peak = resident_bytes()
    samples = 0
    start = time.perf_counter()
    for batches, (_features, labels) in enumerate(dataset, start=1):
        samples += int(labels.shape[0])
        if batches % 16 == 0:
            peak = max(peak, resident_bytes())
    seconds = time.perf_counter() - start
    peak = max(peak, resident_bytes())
    return {
        "samples": samples,
        "seconds": seconds,
        "samples_per_second": samples / seconds,
        "shards": len(paths),
        "shard_file_bytes": sum(path.stat().st_size for path in paths),
        "split_bytes": split_bytes,
        "budget_bytes": budget_bytes,
        "resident_growth_bytes": peak - before,
    }
