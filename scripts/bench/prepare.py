"""Part `prepare`: preparation at scale, fefm-lab against the hand-written pandas route.

Each measurement runs the worker `scripts.bench.prepare_probe` in a fresh process, so its peak
resident memory is that preparation's alone. Sizes below full Criteo are prepared
`--prepare-repeats` times (3): their peak varies between fresh processes by up to a fifth (how
much the allocators keep from one phase for the next), so the figure is the run of median peak;
the 45.8M one runs once (minutes). Generated raw files are kept in the work folder and reused.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from pathlib import Path

from scripts.bench.measure import module_command, run_json_subprocess
from scripts.bench.report import Part, PartResult, Section, Target, format_number, int_list

PROBE = "scripts.bench.prepare_probe"
GIB = 2**30
FULL_CRITEO_ROWS = 45_840_617
# Issue 10's goals, end to end on a quiet machine at full Criteo size (45.8M rows, --full).
ROWS_PER_SECOND_GOAL = 300_000
PEAK_MEMORY_GOAL_GIB = 2.0
MEMORY_GROWTH_GOAL = 1.3  # x: peak at the largest size over the next smaller one (45.8M / 10M)


def generated_criteo_file(rows: int, work: Path) -> Path:
    """A generated Criteo-format raw file of `rows` rows under `work`, made once and reused."""
    from fefm_lab.data.synthetic import manifest_path_for, synthesize

    path = work / f"criteo_generated_{rows}.txt"
    if not (path.is_file() and manifest_path_for(path).is_file()):
        synthesize(path, format="criteo", rows=rows, seed=0, progress=False)
    return path


def phase_text(phases: dict[str, float]) -> str:
    """`pass1 12.3, vocabularies 1.2, pass2 10.1`: the manifest's phase seconds (0 ones left out:
    the row count before a sequential split)."""
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in phases.items() if seconds)


def peaks_text(peaks: dict[str, int]) -> str:
    """`pass1 0.48, vocabularies 0.56, pass2 0.56`: the manifest's running peak (GiB) at the end
    of each phase (the start and the row count, which never set it, left out)."""
    shown = ("pass1", "vocabularies", "pass2")
    return ", ".join(f"{name} {peaks[name] / GIB:.3f}" for name in shown if name in peaks)


def median_run(runs: list[dict]) -> dict:
    """The run of median peak memory (the lower middle one of an even count), with every run's
    peak and seconds under `runs`."""
    ordered = sorted(runs, key=lambda run: run["peak_rss_bytes"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["runs"] = [
        {"peak_rss_bytes": run["peak_rss_bytes"], "seconds": run["seconds"]} for run in runs
    ]
    chosen["median_seconds"] = statistics.median(run["seconds"] for run in runs)
    return chosen


def measure(method: str, raw: Path, work: Path) -> dict:
    """One preparation in a fresh process; its output folder is removed afterwards."""
    out = work / f"prepared_{method}_{raw.stem}"
    shutil.rmtree(out, ignore_errors=True)
    try:
        return run_json_subprocess(module_command(PROBE, method, raw, out))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prepare-sizes", type=int_list, default=[1_000_000, 10_000_000])
    parser.add_argument(
        "--prepare-repeats",
        type=int,
        default=3,
        help="fresh preparations per size below 45.8M; the run of median peak memory is reported",
    )
    parser.add_argument(
        "--pandas-max-rows", type=int, default=1_000_000, help="largest size for the by-hand route"
    )
    parser.add_argument(
        "--full", action="store_true", help="also prepare 45.8M rows (disk, minutes)"
    )


def run(args: argparse.Namespace) -> PartResult:
    sizes, pandas_max_rows, full = args.prepare_sizes, args.pandas_max_rows, args.full
    repeats = max(1, args.prepare_repeats)
    if args.smoke:
        sizes, full, repeats = [2_000, 4_000], False, 2
    work = args.work / "prepare"
    work.mkdir(parents=True, exist_ok=True)
    if full and FULL_CRITEO_ROWS not in sizes:
        sizes = [*sizes, FULL_CRITEO_ROWS]
    results: dict[tuple[int, str], dict] = {}
    for rows in sizes:
        raw = generated_criteo_file(rows, work)
        runs = []
        for _ in range(1 if rows >= FULL_CRITEO_ROWS else repeats):
            runs.append(measure("fefm-lab", raw, work))
            print(f"  prepare {rows:,} rows: {runs[-1]}", flush=True)
        results[(rows, "fefm-lab")] = median_run(runs)
        if rows <= pandas_max_rows:
            results[(rows, "pandas")] = measure("pandas", raw, work)
            print(f"  by hand {rows:,} rows: {results[(rows, 'pandas')]}", flush=True)

    table = []
    for (rows, method), result in sorted(results.items()):
        label = (
            "fefm-lab prepare" if method == "fefm-lab" else "pandas read + LabelEncoder (by hand)"
        )
        peaks = [run["peak_rss_bytes"] / GIB for run in result.get("runs", [result])]
        table.append(
            [
                f"{rows:,}",
                label,
                result["seconds"],
                result["rows_per_second"],
                result["peak_rss_bytes"] / GIB,
                f"{min(peaks):.3f}-{max(peaks):.3f} ({len(peaks)})" if len(peaks) > 1 else "",
                phase_text(result.get("phases", {})),
                peaks_text(result.get("phase_peaks", {})),
            ]
        )
    ordered = sorted(set(sizes))
    largest, smaller = ordered[-1], ordered[-2] if len(ordered) > 1 else ordered[-1]
    mine_large = results[(largest, "fefm-lab")]
    mine_small = results[(smaller, "fefm-lab")]
    targets = [
        Target(
            f"preparation rows/s at {largest:,} rows",
            mine_large["rows_per_second"],
            ROWS_PER_SECOND_GOAL,
            unit=" rows/s",
            note=f"{format_number(mine_large['seconds'])} s end to end",
        ),
        Target(
            f"preparation peak memory at {largest:,} rows"
            + ("" if largest >= FULL_CRITEO_ROWS else " (45.8M only with --full)"),
            mine_large["peak_rss_bytes"] / GIB,
            PEAK_MEMORY_GOAL_GIB,
            higher_is_better=False,
            unit=" GiB",
        ),
    ]
    if largest > smaller:
        targets.append(
            Target(
                f"preparation memory flat: peak at {largest:,} / peak at {smaller:,} rows",
                mine_large["peak_rss_bytes"] / mine_small["peak_rss_bytes"],
                MEMORY_GROWTH_GOAL,
                higher_is_better=False,
                unit="x",
                note=f"{largest / smaller:.1f}x the rows",
            )
        )
    section = Section(
        "Preparation at scale",
        text=(
            "Generated Criteo-format raw files (tab-separated, 40 columns). fefm-lab: "
            "`fefm_lab.data.prepare` end to end (read, vocabularies fit on the train split with "
            "min count 20, encode, columnar shards). By hand: DeepCTR's Criteo example (whole-file "
            f"`pandas.read_csv`, fill missing, `LabelEncoder` per column, `MinMaxScaler`), run up "
            f"to {pandas_max_rows:,} rows. Peak memory is the process's maximum resident set; "
            f"below {FULL_CRITEO_ROWS:,} rows fefm-lab prepares {repeats} times, each in a fresh "
            "process, and the row is the run of median peak (the range and the run count "
            "beside it). Phases, from the prepared manifest: pass 1 reads the file and counts "
            "the train split's values (spilling counts to disk), vocabularies merges the spilled "
            "counts (one core), pass 2 reads the file again and writes the shards; 'peak after' "
            "is the process's running peak at the end of each (the phase that set the peak is "
            "the first to show it)."
        ),
        headers=[
            "rows",
            "method",
            "seconds",
            "rows/s",
            "peak memory (GiB)",
            "peak range (runs)",
            "phases (s)",
            "peak after phase (GiB)",
        ],
        rows=table,
        data={f"{rows}/{method}": result for (rows, method), result in results.items()},
    )
    return PartResult([section], targets)


PART = Part("prepare", "preparation rows/s and peak memory, beside pandas", add_arguments, run)
