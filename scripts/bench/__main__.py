"""fefm-lab benchmarks: `python -m scripts.bench [PART] [options]`, reports under results/bench/.

    python -m scripts.bench              # = `all`: the parts of bench.md (`make bench`)
    python -m scripts.bench all --smoke  # tiny sizes, seconds -> data/bench/smoke/ (tests)
    python -m scripts.bench all --full   # preparation also at Criteo's 45.8M rows
    python -m scripts.bench all --only layer,vocab
    python -m scripts.bench layer        # one part alone -> results/bench/layer.md and .json
    python -m scripts.bench peer         # side by side with DeepCTR 0.9.4 (`make bench-peer`)
    python -m scripts.bench profile      # where a training step goes -> step_profile.md
    python -m scripts.bench PART --help  # a part's own options
    python -m scripts.bench.prepare_compare --baseline REF  # preparation: REF vs this checkout

Parts (in bench.md in this order; the preparation probes run before this process holds large
tables in memory):
- prepare:  preparation rows/s and peak memory at 1M and 10M rows, beside the pandas route
- layer:    FEFM layer forward / backward throughput as a share of the matmul rate
- pipeline: input pipeline batches/s versus training steps/s; samples/s streaming cold shards
- vocab:    training step time with 10k versus 1M rows per embedding table
- checkpoint: step time with and without checkpoints; overhead at the default interval
- peer:     fefm-lab against the reference DeepFEFM (own report, own venv; not in bench.md)
- profile:  a training step split into forward, backward and update (own report)

Adding a part (e.g. checkpoint or launcher overhead): write `scripts/bench/<part>.py` with
`add_arguments(parser)` and `run(args) -> PartResult`, expose `PART = Part(...)`, and add it to
`PARTS` below. Time with `scripts.bench.measure`; never write result files yourself (the entry
point writes the report after each part, so a later failure keeps the earlier figures).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from scripts.bench import checkpoint, cluster, layer, prepare, step_profile, training
from scripts.bench.machine import describe_machine
from scripts.bench.measure import ROOT
from scripts.bench.peer import compare
from scripts.bench.report import Part, PartResult, write_report, write_summary

# The one registry: each part is a subcommand; `all` runs those with in_bench_report, in order.
PARTS: tuple[Part, ...] = (
    prepare.PART,
    layer.PART,
    training.PIPELINE,
    training.VOCABULARY,
    checkpoint.PART,
    compare.PART,
    step_profile.PART,
    cluster.PART,
)
ALL = "all"
BENCH_PARTS = tuple(part.name for part in PARTS if part.in_bench_report)


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report folder (default results/bench; with --smoke data/bench/smoke, so smoke "
        "figures never replace the committed results)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "data" / "bench",
        help="generated raw files and scratch (git-ignored; reused)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (tests)")
    parser.add_argument("--stem", default=None, help="report name: <stem>.md / <stem>.json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="part", metavar="PART")
    everything = commands.add_parser(ALL, help=f"the parts of bench.md: {', '.join(BENCH_PARTS)}")
    _add_common_arguments(everything)
    everything.add_argument(
        "--only", default=",".join(BENCH_PARTS), help=f"subset of {', '.join(BENCH_PARTS)}"
    )
    for part in PARTS:
        if part.in_bench_report:
            part.add_arguments(everything)
        alone = commands.add_parser(part.name, help=part.help)
        _add_common_arguments(alone)
        part.add_arguments(alone)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = {part.name for part in PARTS} | {ALL, "-h", "--help"}
    if not argv or argv[0] not in names:
        argv = [ALL, *argv]  # `make bench BENCH_ARGS=--smoke` passes options only
    parser = build_parser()
    args = parser.parse_args(argv)
    # workers run from the repository root: hand them absolute paths
    if args.out is None:
        args.out = ROOT / "data" / "bench" / "smoke" if args.smoke else ROOT / "results" / "bench"
    args.out, args.work = args.out.resolve(), args.work.resolve()
    if args.part == ALL:
        chosen = [name for name in args.only.split(",") if name]
        unknown = sorted(set(chosen) - set(BENCH_PARTS))
        if unknown:
            parser.error(f"--only: unknown part(s) {unknown}; choose from {BENCH_PARTS}")
        parts = [part for part in PARTS if part.name in chosen]
        stem = args.stem or "bench"
        run_parts(parts, args, stem=stem, title="fefm-lab benchmarks", command="make bench")
    else:
        part = next(part for part in PARTS if part.name == args.part)
        title = part.title or f"fefm-lab benchmark: {part.name}"
        command = f"python -m scripts.bench {part.name}"
        stem = args.stem or part.report_stem
        run_parts([part], args, stem=stem, title=title, command=command)
    return 0


def run_parts(
    parts: Sequence[Part], args: argparse.Namespace, *, stem: str, title: str, command: str
) -> None:
    """Run `parts` in order, rewriting `<stem>.md/.json` after each one, then the summary."""
    machine = describe_machine()
    started = time.perf_counter()
    results: list[tuple[str, PartResult]] = []
    for part in parts:
        result = part.run(args)
        results.append((part.name, result))
        _write(
            args,
            results,
            stem=stem,
            title=title,
            command=command,
            machine=machine,
            seconds=time.perf_counter() - started,
        )
        print(f"{part.name}: {[section.title for section in result.sections]}", flush=True)
    summary = write_summary(args.out)
    print(f"wrote {args.out / stem}.md and .json" + (f" and {summary.name}" if summary else ""))


def _write(args, results, *, stem, title, command, machine, seconds) -> None:
    """Write the report so far: a later part that fails leaves the earlier ones on disk."""
    done = [name for name, _ in results]
    intro = " ".join(
        [
            f"Generated by `{command}` (`python -m scripts.bench`); do not edit by hand.",
            f"Parts run: {', '.join(done)}; total {seconds:.0f} s.",
            *(result.intro for _, result in results if result.intro),
            *(["SMOKE RUN: tiny sizes, figures meaningless."] if args.smoke else []),
        ]
    )
    settings = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in vars(args).items()
        if key not in ("out", "work", "stem")
    }
    settings["parts"] = done
    for _, result in results:
        settings.update(result.settings)
    extra_machine = {key: value for _, result in results for key, value in result.machine.items()}
    write_report(
        args.out,
        stem,
        title=title,
        intro=intro,
        machine={**machine, **extra_machine},
        sections=[section for _, result in results for section in result.sections],
        targets=[target for _, result in results for target in result.targets],
        settings=settings,
    )


if __name__ == "__main__":
    sys.exit(main())
