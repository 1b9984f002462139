"""Part `checkpoint`: what saving checkpoints costs a training run.

The shipped DeepFEFM at Criteo's shape (39 tables of `--checkpoint-rows` rows, k 16, AdaGrad,
batch 1024), as in the `vocab` part. In one process, side by side:

- the step time without checkpoints (median of steps on resident batches),
- the time of one whole checkpoint (weights, optimizer slots, best weights, position) written
  atomically to `--work`, as the training loop writes it,
- blocks of steps with a checkpoint every `--checkpoint-every` steps, alternated with blocks
  without, to check that a save costs the steps nothing beyond its own time.

The loop saves once per interval, whatever the step time, so the overhead is one save's time over
the interval: at the fixed default (`trainer.checkpoint_every_minutes`, 10), and with the default
settings, where saves are spaced at least save time / `trainer.checkpoint_max_time_share` (1%)
apart.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time

import numpy as np

from scripts.bench.measure import median_seconds
from scripts.bench.report import Part, PartResult, Section, Target, format_number
from scripts.bench.training import BATCH, EMBEDDING_DIM, FIELDS, random_id_trainer

OVERHEAD_GOAL = 0.02  # fraction of training time at the default interval, at most
HASH = "bench000checkpnt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint-rows", type=int, default=1_000_000, help="rows per embedding table"
    )
    parser.add_argument("--checkpoint-steps", type=int, default=40, help="steps per timed block")
    parser.add_argument(
        "--checkpoint-every", type=int, default=20, help="steps between saves in the timed blocks"
    )
    parser.add_argument("--checkpoint-saves", type=int, default=3, help="timed saves")


def run(args: argparse.Namespace) -> PartResult:
    from fefm_lab.config.trainer import TrainerConfig
    from fefm_lab.training.checkpoint import CheckpointDirectory, Position, TrainingState

    rows, steps, every, saves = (
        args.checkpoint_rows,
        args.checkpoint_steps,
        args.checkpoint_every,
        args.checkpoint_saves,
    )
    if args.smoke:
        rows, steps, every, saves = 500, 6, 3, 2
    defaults = TrainerConfig()
    interval_seconds = 60.0 * defaults.checkpoint_every_minutes
    trainer, batches = random_id_trainer(rows)
    directory = CheckpointDirectory(args.work / "checkpoint-bench", HASH)
    # A run keeps the best epoch's weights in memory and in every checkpoint.
    best = [np.array(w) for w in trainer.model.get_weights()]

    def save() -> None:
        directory.save(
            TrainingState(
                position=Position(),
                model=list(trainer.model.variables),
                optimizer=list(trainer.optimizer.state_variables),
                best=best,
                variable_names=[v.path for v in trainer.model.variables],
                run_id="bench",
            )
        )

    position = [0]

    def step() -> None:
        features, labels = batches[position[0] % len(batches)]
        position[0] += 1
        trainer.train_step(features, labels).numpy()

    def block(with_saves: bool) -> float:
        start = time.perf_counter()
        for index in range(1, steps + 1):
            step()
            if with_saves and index % every == 0:
                save()
        return time.perf_counter() - start

    try:
        step_seconds = median_seconds(step, repeats=steps, warmup=3)
        save_seconds = median_seconds(save, repeats=saves, warmup=1)
        size = directory.path.stat().st_size
        plain, saving = [], []
        for _ in range(2):  # A/B/A/B: drift of a busy machine hits both alike
            plain.append(block(False))
            saving.append(block(True))
    finally:
        shutil.rmtree(directory.directory, ignore_errors=True)

    saves_per_block = steps // every
    plain_seconds, saving_seconds = statistics.fmean(plain), statistics.fmean(saving)
    extra_per_save = (saving_seconds - plain_seconds) / saves_per_block
    fixed_overhead = save_seconds / interval_seconds
    # What a run with the defaults does: saves spaced to cost at most checkpoint_max_time_share.
    effective_interval = max(interval_seconds, save_seconds / defaults.checkpoint_max_time_share)
    overhead = save_seconds / effective_interval
    target = Target(
        f"checkpoint overhead with the default settings, {rows:,} rows per table",
        overhead * 100,
        OVERHEAD_GOAL * 100,
        higher_is_better=False,
        unit="%",
        note=f"one save {format_number(save_seconds)} s ({size / 2**30:.2f} GiB) every "
        f"{effective_interval / 60:.1f} min; at a fixed {interval_seconds / 60:.0f} min: "
        f"{fixed_overhead * 100:.2f}%; step {format_number(step_seconds * 1e3)} ms",
    )
    section = Section(
        "Checkpoint overhead",
        text=(
            f"{FIELDS} tables of {rows:,} rows, k {EMBEDDING_DIM}, the shipped DeepFEFM (DNN "
            f"256-128-64), batch {BATCH}, AdaGrad. A checkpoint holds the weights, the AdaGrad "
            f"accumulators and the best weights ({size / 2**30:.2f} GiB), written atomically. "
            f"Blocks of {steps} steps with a save every {every} steps alternated with blocks "
            "without (means of 2 each): the extra time per save should be the save's own time."
        ),
        headers=["what", "value"],
        rows=[
            ["step without checkpoints (median, ms)", step_seconds * 1e3],
            ["one checkpoint save (median, s)", save_seconds],
            ["checkpoint size (GiB)", size / 2**30],
            [f"block of {steps} steps, no saves (s)", plain_seconds],
            [f"block of {steps} steps, {saves_per_block} saves (s)", saving_seconds],
            ["extra time per save in the blocks (s)", extra_per_save],
            [
                f"overhead at a fixed {interval_seconds / 60:.0f}-minute interval (%)",
                fixed_overhead * 100,
            ],
            [
                "interval with the default settings (saves spaced to cost at most "
                f"{defaults.checkpoint_max_time_share:.0%}, min)",
                effective_interval / 60,
            ],
            ["overhead with the default settings (%)", overhead * 100],
            [
                "overhead when saving every epoch of full Criteo only (%)",
                save_seconds / (29_337_994 / BATCH * step_seconds) * 100,
            ],
        ],
        data={
            "rows_per_table": rows,
            "step_seconds": step_seconds,
            "save_seconds": save_seconds,
            "checkpoint_bytes": size,
            "block_seconds_without": plain,
            "block_seconds_with": saving,
            "extra_seconds_per_save": extra_per_save,
            "overhead_at_fixed_interval": fixed_overhead,
            "effective_interval_seconds": effective_interval,
            "overhead_with_defaults": overhead,
        },
    )
    return PartResult([section], [target])


PART = Part("checkpoint", "what saving checkpoints costs a training run", add_arguments, run)
