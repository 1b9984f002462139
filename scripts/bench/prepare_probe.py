"""Worker: prepare one raw Criteo-format file in this process; print time, rows and peak memory.

Usage: python -m scripts.bench.prepare_probe {fefm-lab|pandas} RAW_FILE WORK_DIR
Started by the `prepare` part, one fresh process per measurement, so the peak resident memory
(this process and its children) belongs to that preparation alone.

- `fefm-lab`: `fefm_lab.data.prepare` (streaming read, vocabularies fit on the train split,
  columnar shards), end to end.
- `pandas`: what users write by hand today, after DeepCTR's Criteo example: read the whole file
  with pandas, fill missing values, label-encode the 26 categorical columns and min-max scale the
  13 integer columns, all in memory.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from scripts.bench.measure import peak_rss_bytes


def prepare_with_fefm_lab(raw: Path, work: Path) -> tuple[int, dict[str, float], dict[str, int]]:
    """Rows prepared, and the phase seconds and running peak memory (bytes) at the end of each
    phase that the prepared manifest records."""
    from fefm_lab.data.prepare import prepare

    config = {"name": "bench", "format": "criteo", "path": str(raw)}
    data = prepare(config, seed=0, data_root=work, progress=False)
    rows = sum(data.rows(split) for split in ("train", "validation", "test"))
    manifest = data.manifest
    return rows, dict(manifest.get("seconds", {})), dict(manifest.get("peak_rss_bytes", {}))


def prepare_by_hand(raw: Path) -> int:
    import pandas as pd
    from sklearn.preprocessing import LabelEncoder, MinMaxScaler

    integer = [f"I{i}" for i in range(1, 14)]
    categorical = [f"C{i}" for i in range(1, 27)]
    frame = pd.read_csv(raw, sep="\t", header=None, names=["label", *integer, *categorical])
    frame[categorical] = frame[categorical].fillna("-1")
    frame[integer] = frame[integer].fillna(0)
    for column in categorical:
        frame[column] = LabelEncoder().fit_transform(frame[column])
    frame[integer] = MinMaxScaler(feature_range=(0, 1)).fit_transform(frame[integer])
    return len(frame)


def main(method: str, raw_file: str, work_dir: str) -> None:
    raw, work = Path(raw_file), Path(work_dir)
    start = time.perf_counter()
    phases: dict[str, float] = {}
    phase_peaks: dict[str, int] = {}
    if method == "fefm-lab":
        rows, phases, phase_peaks = prepare_with_fefm_lab(raw, work)
    elif method == "pandas":
        rows = prepare_by_hand(raw)
    else:
        raise SystemExit(f"method must be 'fefm-lab' or 'pandas', received {method!r}")
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "method": method,
                "rows": rows,
                "seconds": seconds,
                "rows_per_second": rows / seconds,
                "peak_rss_bytes": peak_rss_bytes(),
                "phases": phases,
                "phase_peaks": phase_peaks,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
