"""Parts `vocab` (training step time against vocabulary size) and `pipeline` (input pipeline
against training steps).

Both use fefm-lab's own step (`fefm_lab.training.Trainer.train_step`: row-sparse AdaGrad, the
trainer's defaults) and the shipped DeepFEFM's keywords (`model_defaults` of
fefm_lab.config.schema) at Criteo's shape: 39 categorical fields, k 16, batch 1024.
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import numpy as np

from scripts.bench.measure import mean_seconds, median_seconds
from scripts.bench.report import Part, PartResult, Section, Target, format_number, int_list

FIELDS = 39
BATCH = 1024
WARMUP = 3
VOCABULARY_GROWTH_GOAL = 1.5  # x: step time at the largest table over the smallest, at most
PIPELINE_OVER_STEP_GOAL = 3.0  # x: input batches/s over training steps/s, at least
STREAMING_SAMPLES_GOAL = 500_000  # samples/s streaming cold shards on 2 cores (what a GPU needs)
MIB = 2**20
# Criteo's shape: k 16 (the shipped default, 8, keeps the synthetic `make run` short)
EMBEDDING_DIM = 16


def default_model_parameters() -> dict:
    """The shipped DeepFEFM's builder keywords (fefm_lab.config.schema), not a copy."""
    from fefm_lab.config.schema import model_defaults

    return model_defaults("deepfefm")


def build_default_model(columns, l2_mode: str, seed: int = 0):
    from fefm_lab.model import build_model

    params = {**default_model_parameters(), "l2_mode": l2_mode}
    return build_model("deepfefm", columns, columns, seed=seed, **params)


def step_seconds(trainer, batches, steps: int, warmup: int) -> float:
    """Median time of one finished training step over `steps` steps cycling through `batches`."""
    cycle = itertools.cycle(batches)

    def step() -> None:
        features, labels = next(cycle)
        trainer.train_step(features, labels).numpy()

    return median_seconds(step, repeats=steps, warmup=warmup)


def random_id_trainer(rows: int, l2_mode: str = "batch") -> tuple[Any, list]:
    """The shipped DeepFEFM with `rows` rows in each of the 39 tables, and 4 batches of uniform
    random ids (click rate 0.25) to train it on."""
    import keras
    import tensorflow as tf

    from fefm_lab.features import SparseFeat
    from fefm_lab.training import Trainer, TrainerConfig

    keras.backend.clear_session()
    columns = [SparseFeat(f"C{i}", rows, EMBEDDING_DIM) for i in range(FIELDS)]
    trainer = Trainer(build_default_model(columns, l2_mode), TrainerConfig(verbose=False))
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(4):
        ids = rng.integers(0, rows, size=(BATCH, FIELDS), dtype=np.int32)
        features = {f"C{i}": tf.constant(ids[:, i : i + 1]) for i in range(FIELDS)}
        labels = tf.constant((rng.random((BATCH, 1)) < 0.25).astype(np.float32))
        batches.append((features, labels))
    return trainer, batches


def vocabulary_step_seconds(vocabulary: int, l2_mode: str, steps: int, warmup: int) -> float:
    """Step time with `vocabulary` rows in each of the 39 tables, uniform random ids."""
    trainer, batches = random_id_trainer(vocabulary, l2_mode)
    return step_seconds(trainer, batches, steps, warmup)


def add_vocabulary_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vocab-sizes", type=int_list, default=[10_000, 1_000_000])
    parser.add_argument("--vocab-steps", type=int, default=20, help="timed steps per size")


def run_vocabulary(args: argparse.Namespace) -> PartResult:
    sizes, steps, warmup = args.vocab_sizes, args.vocab_steps, WARMUP
    if args.smoke:
        sizes, steps, warmup = [50, 500], 3, 1
    small, large = min(sizes), max(sizes)
    times = {
        (size, mode): vocabulary_step_seconds(size, mode, steps, warmup)
        for mode in ("batch", "table")
        for size in sizes
    }
    rows = [
        [
            f"{size:,}",
            mode + (" (default)" if mode == "batch" else " (reference parity)"),
            times[(size, mode)] * 1e3,
            BATCH / times[(size, mode)],
            f"{times[(size, mode)] / times[(small, mode)]:.2f}",
        ]
        for mode in ("batch", "table")
        for size in sizes
    ]
    growth = times[(large, "batch")] / times[(small, "batch")]
    table_growth = times[(large, "table")] / times[(small, "table")]
    target = Target(
        f"step time at {large:,} vs {small:,} rows per table (l2_mode=batch)",
        growth,
        VOCABULARY_GROWTH_GOAL,
        higher_is_better=False,
        unit="x",
        note=f"{format_number(times[(large, 'batch')] * 1e3)} ms vs "
        f"{format_number(times[(small, 'batch')] * 1e3)} ms; l2_mode=table grows "
        f"{table_growth:.1f}x ({format_number(times[(large, 'table')] * 1e3)} ms)",
    )
    dnn = "-".join(map(str, default_model_parameters()["dnn_hidden_units"]))
    section = Section(
        "Vocabulary size (training step time)",
        text=(
            f"{FIELDS} tables of the given rows each, k {EMBEDDING_DIM}, DNN {dnn}, batch {BATCH}, "
            f"uniform random ids (every batch touches ~{BATCH} distinct rows per table), "
            f"AdaGrad; median of {steps} steps after {warmup} warm-up."
        ),
        headers=["rows per table", "l2_mode", "step (ms)", "samples/s", "x smallest"],
        rows=rows,
        data={f"{size}/{mode}": seconds for (size, mode), seconds in times.items()},
    )
    return PartResult([section], [target])


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline-rows", type=int, default=200_000, help="generated rows")
    parser.add_argument("--pipeline-batches", type=int, default=80, help="timed batches")
    parser.add_argument(
        "--stream-rows",
        type=int,
        default=10_000_000,
        help="generated rows prepared for the cold-streaming measurement (raw file shared with "
        "the prepare part)",
    )
    parser.add_argument(
        "--stream-budget-mib",
        type=int,
        default=256,
        help="the pipeline's memory budget while streaming (below the train split's size)",
    )


def run_pipeline(args: argparse.Namespace) -> PartResult:
    """Batches/s of `train_dataset` alone, then steps/s of training fed by it."""
    rows, batches, warmup = args.pipeline_rows, args.pipeline_batches, WARMUP
    if args.smoke:
        rows, batches, warmup = 3_000, 12, 1
    import keras

    from fefm_lab.data.input import train_dataset
    from fefm_lab.data.prepare import prepare
    from fefm_lab.training import Trainer, TrainerConfig

    config = {
        "name": "bench_pipeline",
        "format": "synthetic",
        "synthetic": {"format": "criteo", "rows": rows, "seed": 0},
    }
    data = prepare(config, seed=0, data_root=args.work, progress=False)

    def batch_stream():
        while True:
            yield from train_dataset(data, BATCH, 0)

    stream = batch_stream()
    input_seconds = mean_seconds(lambda: next(stream), repeats=batches, warmup=warmup)

    keras.backend.clear_session()
    _linear, dnn = data.feature_columns(EMBEDDING_DIM)
    trainer = Trainer(build_default_model(dnn, "batch"), TrainerConfig(verbose=False))
    stream = batch_stream()
    fed = [next(stream) for _ in range(4)]
    compute_seconds = step_seconds(trainer, fed, batches, warmup)

    def fed_step() -> None:
        features, labels = next(stream)
        trainer.train_step(features, labels).numpy()

    fed_seconds = mean_seconds(fed_step, repeats=batches, warmup=warmup)

    ratio = compute_seconds / input_seconds
    rows = [
        ["input pipeline alone (`train_dataset`)", 1 / input_seconds, BATCH / input_seconds],
        ["training step on resident batches", 1 / compute_seconds, BATCH / compute_seconds],
        ["training step fed by the pipeline", 1 / fed_seconds, BATCH / fed_seconds],
    ]
    target = Target(
        "input pipeline batches/s over training steps/s",
        ratio,
        PIPELINE_OVER_STEP_GOAL,
        unit="x",
        note=f"{format_number(1 / input_seconds)} batches/s vs "
        f"{format_number(1 / compute_seconds)} steps/s",
    )
    stream_section, stream_target = _run_streaming(args)
    section = Section(
        "Input pipeline",
        text=(
            f"Prepared generated Criteo-format data ({data.rows('train'):,} train rows), "
            f"batch {BATCH}, default model; mean over {batches} batches after {warmup} warm-up "
            "for the pipeline, median for the step."
        ),
        headers=["what", "batches/s", "rows/s"],
        rows=rows,
        data={
            "input_seconds_per_batch": input_seconds,
            "step_seconds": compute_seconds,
            "fed_step_seconds": fed_seconds,
        },
    )
    return PartResult([section, stream_section], [target, stream_target])


def _run_streaming(args: argparse.Namespace) -> tuple[Section, Target]:
    """One epoch of the train split streamed from cold shards (scripts.bench.stream)."""
    from fefm_lab.data.prepare import prepare
    from scripts.bench.prepare import generated_criteo_file
    from scripts.bench.stream import stream_one_epoch

    rows, budget, shard_rows = args.stream_rows, args.stream_budget_mib * MIB, 1_000_000
    if args.smoke:
        rows, budget, shard_rows = 6_000, 64 << 10, 1_000
    raw = generated_criteo_file(rows, args.work / "prepare")
    config = {"name": "bench_stream", "format": "criteo", "path": str(raw)}
    config["shard_rows"] = shard_rows
    data = prepare(config, seed=0, data_root=args.work / "pipeline", progress=False)
    result = stream_one_epoch(data, BATCH, budget)
    growth_mib = result["resident_growth_bytes"] / MIB
    split_gib = result["split_bytes"] / 2**30
    target = Target(
        "input pipeline streaming cold shards (split > memory budget), samples/s",
        result["samples_per_second"],
        STREAMING_SAMPLES_GOAL,
        unit=" samples/s",
        note=f"{result['samples']:,} rows, {split_gib:.2f} GiB in {result['shards']} shards; "
        f"budget {format_number(budget / MIB)} MiB, "
        f"resident growth {format_number(growth_mib)} MiB",
    )
    section = Section(
        "Input pipeline streaming cold shards",
        text=(
            f"`train_dataset` over the train split of {rows:,} generated Criteo-format rows "
            f"({result['split_bytes'] / MIB:,.0f} MiB of ids and labels in {result['shards']} "
            f"shards of at most {shard_rows:,} rows), memory budget {budget / MIB:.2f} MiB, so "
            "it streams the shards (shuffled, rows permuted within each) instead of loading "
            "the split. The shards' pages are dropped from the page cache first "
            "(posix_fadvise DONTNEED): every byte comes from disk. One epoch, batch "
            f"{BATCH}, iterated from Python; resident growth is the process's resident set "
            "while streaming minus before. The split is smaller than the machine's RAM: the "
            "bound shown is the pipeline's own memory, not the machine's."
        ),
        headers=["rows streamed", "seconds", "samples/s", "split (MiB)", "resident growth (MiB)"],
        rows=[
            [
                f"{result['samples']:,}",
                result["seconds"],
                result["samples_per_second"],
                result["split_bytes"] / MIB,
                growth_mib,
            ]
        ],
        data=result,
    )
    return section, target


PIPELINE = Part(
    "pipeline",
    "input pipeline batches/s against training steps/s",
    add_pipeline_arguments,
    run_pipeline,
)
VOCABULARY = Part(
    "vocab",
    "training step time against rows per embedding table",
    add_vocabulary_arguments,
    run_vocabulary,
)
