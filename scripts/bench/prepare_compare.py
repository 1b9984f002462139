"""Preparation side by side: this checkout's fefm_lab against a baseline commit's, alternating.

    python -m scripts.bench.prepare_compare --baseline f7e9fbc --rows 10000000 --rounds 2

Every run is the `prepare` part's worker (`scripts.bench.prepare_probe fefm-lab`, the whole
`fefm_lab.data.prepare` path) in a fresh process on the same generated raw file. The baseline's
`fefm_lab` package is extracted with `git archive` into a temporary folder, this checkout's is
copied there (edits made while the runs go on change nothing), and each run imports its own
(`python -P`, its folder first on PYTHONPATH). Runs alternate (baseline, current, current,
baseline, ...) so load that drifts on a shared machine weighs on both alike; the ratio reported
is of the medians. Each run's prepared files (all but the manifest, which holds times) are
hashed: the two versions must write the same bytes, and the script exits 1 when they do not.
Prints a Markdown table; writes nothing under results/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from fefm_lab.markdown import markdown_table
from scripts.bench.measure import ROOT, module_command
from scripts.bench.prepare import PROBE, generated_criteo_file, peaks_text, phase_text

GIB = 2**30


def extract_package(ref: str, destination: Path) -> Path:
    """`fefm_lab/` as of git `ref`, under `destination` (which then goes on the path)."""
    destination.mkdir(parents=True)
    archive = destination / "fefm_lab.tar"
    with open(archive, "wb") as sink:
        subprocess.run(
            ["git", "archive", "--format=tar", ref, "fefm_lab"], cwd=ROOT, stdout=sink, check=True
        )
    with tarfile.open(archive) as tar:
        tar.extractall(destination, filter="data")
    archive.unlink()
    return destination


def content_digest(directory: Path) -> str:
    """SHA-256 over every prepared file but the manifest, by relative path (as the golden test)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = file.relative_to(directory).as_posix()
        if relative == "manifest.json":
            continue
        digest.update(relative.encode() + b"\0")
        with open(file, "rb") as handle:
            while piece := handle.read(1 << 24):
                digest.update(piece)
    return digest.hexdigest()


def run_once(code: Path, raw: Path, out: Path) -> dict:
    """One preparation of `raw` with the fefm_lab package under `code`; its figures and digest."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-P", *module_command(PROBE, "fefm-lab", raw, out)[1:]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=ROOT,
        # `code` first; this checkout for the worker module (scripts.bench.*)
        env={**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(code), str(ROOT)]))},
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        if completed.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited {completed.returncode}:\n" + completed.stderr[-3000:]
            )
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        (prepared,) = [p for p in (out / "prepared").iterdir() if not p.name.startswith(".")]
        result["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (
            after.ru_stime - before.ru_stime
        )
        result["digest"] = content_digest(prepared)
        return result
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.prepare_compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--baseline", required=True, help="git commit or branch to compare with")
    parser.add_argument("--rows", type=int, default=10_000_000, help="generated Criteo rows")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each version")
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "data" / "bench",
        help="folder of the generated raw files (<work>/prepare/, as `python -m scripts.bench`)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds: expected at least 1, got {args.rounds}")
    work = args.work.resolve() / "prepare"
    work.mkdir(parents=True, exist_ok=True)
    raw = generated_criteo_file(args.rows, work)
    runs: list[tuple[str, dict]] = []
    with tempfile.TemporaryDirectory(prefix="fefm-prepare-compare-") as scratch:
        scratch = Path(scratch)
        baseline = extract_package(args.baseline, scratch / "baseline")
        # A copy, so edits to the checkout while the runs go on do not mix into them.
        current = scratch / "current"
        shutil.copytree(
            ROOT / "fefm_lab", current / "fefm_lab", ignore=shutil.ignore_patterns("__pycache__")
        )
        versions = {f"baseline {args.baseline}": baseline, "current": current}
        order = list(versions)
        for round_index in range(args.rounds):
            for label in order if round_index % 2 == 0 else order[::-1]:
                result = run_once(versions[label], raw, scratch / "out")
                runs.append((label, result))
                print(f"  {label}: {result}", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    rows = [
        [
            label,
            f"{r['seconds']:.2f}",
            f"{r['rows_per_second']:,.0f}",
            f"{r['cpu_seconds']:.1f}",
            f"{r['peak_rss_bytes'] / GIB:.3f}",
            phase_text(r["phases"]),
            peaks_text(r.get("phase_peaks", {})) or "-",
            r["digest"][:16],
        ]
        for label, r in runs
    ]
    print(
        markdown_table(
            rows,
            [
                "version",
                "seconds",
                "rows/s",
                "CPU s",
                "peak GiB",
                "phases (s)",
                "peak after phase (GiB)",
                "output SHA-256",
            ],
        )
    )
    medians = {
        label: statistics.median(r["seconds"] for name, r in runs if name == label)
        for label in order
    }
    base, current = medians[order[0]], medians["current"]
    print(
        f"\n{args.rows:,} rows, {args.rounds} round(s); median seconds {base:.2f} -> "
        f"{current:.2f}: current is {base / current:.3f}x the baseline's rate. "
        f"Load average (1 min) at the end: {load:.1f} on {os.cpu_count()} cores."
    )
    digests = {r["digest"] for _, r in runs}
    if len(digests) != 1:
        print("DIFFERENT OUTPUT: the prepared files differ between runs", file=sys.stderr)
        return 1
    print("Prepared files byte-identical across all runs.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
