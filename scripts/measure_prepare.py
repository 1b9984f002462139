"""Measure preparation speed and peak memory on generated Criteo (or Avazu) rows.

    .venv/bin/python scripts/measure_prepare.py --rows 1000000 [--work /tmp/fefm-measure]

Generates the raw file once (cached in --work), then prepares it in a fresh child process so the
peak RSS (resource.getrusage ru_maxrss of that child) covers preparation alone. Prints one JSON
line: rows, seconds, rows/s end to end (both passes), peak RSS in MiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _child(raw: Path, raw_format: str, data_root: Path, encoding: str) -> None:
    from fefm_lab.data import prepare

    started = time.perf_counter()
    data = prepare(
        {"name": "measure", "format": raw_format, "path": str(raw), "integer_encoding": encoding},
        seed=0,
        data_root=data_root,
        progress=False,
    )
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = data.manifest["rows_read"]
    print(
        json.dumps(
            {
                "format": raw_format,
                "integer_encoding": encoding,
                "rows": rows,
                "bytes": data.manifest["source"]["size"],
                "seconds": round(seconds, 2),
                "rows_per_s": round(rows / seconds),
                "pass_seconds": data.manifest["seconds"],
                "peak_rss_mib": round(peak_mib),
                "total_vocabulary": data.feature_map.total_vocabulary,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("criteo", "avazu"), default="criteo")
    parser.add_argument("--encoding", default="categorical")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fefm-measure"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    suffix = "txt" if args.format == "criteo" else "csv"
    raw = args.work / f"{args.format}-{args.rows}.{suffix}"
    data_root = args.work / "root"
    if args.child:
        _child(raw, args.format, data_root, args.encoding)
        return
    if not raw.is_file():
        from fefm_lab.data import synthesize

        started = time.perf_counter()
        synthesize(raw, format=args.format, rows=args.rows, seed=0, progress=False)
        print(f"generated {raw} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    shutil.rmtree(data_root, ignore_errors=True)
    command = [sys.executable, __file__, "--child", "--rows", str(args.rows)]
    command += ["--format", args.format, "--encoding", args.encoding, "--work", str(args.work)]
    subprocess.run(command, check=True)
    shutil.rmtree(data_root, ignore_errors=True)


if __name__ == "__main__":
    main()
