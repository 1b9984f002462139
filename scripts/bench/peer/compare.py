"""Part `peer`: fefm-lab's DeepFEFM side by side with the reference DeepCTR 0.9.4 DeepFEFM.

Usage: python -m scripts.bench peer [--smoke] [--seeds 5]   (`make bench-peer`)

1. Makes sure the reference environment exists (`--peer-venv`, default .bench-peer-venv:
   deepctr 0.9.4, tensorflow-cpu 2.15.1, numpy<2, Keras 2), creating it with pip when missing.
2. Prepares the data once with fefm-lab: the real Criteo sample when FEFM_LAB_REAL_DATA is set,
   generated Criteo-format data otherwise, and exports the encoded splits to one .npz.
3. Trains both implementations in fresh worker processes (`peer.fefm_side`, `peer.deepctr_side`)
   that run the one protocol (`peer.protocol`): identical arrays, split, batches (same per-epoch
   permutation), hyperparameters and early stopping, with identical L2 strengths; fefm-lab runs
   its own trainer in `l2_mode=table` (the reference's whole-table L2) and `l2_mode=batch` (its
   default), and, like the reference, Keras's `model.fit` (l2_mode=batch) compiled with
   `keras.optimizers.Adagrad` and with `fefm_lab.RowSparseAdagrad`.
4. Reports (peer.md / peer.json): time from model construction to the first finished step,
   steady-state samples/s, and test AUC / log loss (exact, same metric code for both) over
   several seeds, with each target marked met or missed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scripts.bench.measure import ROOT, interval_stats, module_command, run_json_subprocess
from scripts.bench.peer.protocol import SPLITS, EncodedData
from scripts.bench.report import Part, PartResult, Section, Target, format_number

FEFM_SIDE = "scripts.bench.peer.fefm_side"
REFERENCE_SIDE = "scripts.bench.peer.deepctr_side"
PEER_REQUIREMENTS = ("deepctr==0.9.4", "tensorflow-cpu==2.15.1", "numpy<2")
SHAPES = [(16, (256, 128, 64)), (48, (256, 128, 64)), (16, (1024, 1024, 1024)), (48, (1024,) * 3)]
SMOKE_SHAPES = [(4, (8,))]
TRAINER, FIT_KERAS, FIT_ROW_SPARSE = "trainer", "fit-keras", "fit-rowsparse"
# The paper's best Criteo DeepFEFM (its preset: AdaGrad lr 0.01, L2 and dropout of Table 4) with
# the trainer's batch sizes and early stopping, at batch 1024 for every shape (the preset's 512 is
# for k > 32 in the paper): one batch size keeps the shapes' throughputs comparable.
PAPER_PRESET = ("experiment=paper_criteo", "trainer.batch_size=1024")
READY_GOAL = 20.0  # x sooner than the reference
THROUGHPUT_GOAL = 5.0  # x the reference's steady samples/s
# Keras fit on both sides (issue 23): x the reference at these shapes, and of the own trainer
FIT_GOALS = {(16, (256, 128, 64)): 10.0, (48, (1024, 1024, 1024)): 5.0}
FIT_OF_TRAINER_GOAL = 0.8
AUC_GAP_GOAL = -0.002  # test AUC minus the reference's, at least (issue 10: within 0.002)


@dataclass(frozen=True)
class Side:
    implementation: str
    l2_mode: str | None
    path: str = TRAINER  # fefm-lab's: TRAINER, FIT_KERAS or FIT_ROW_SPARSE (`fefm_side.PATHS`)

    @property
    def label(self) -> str:
        if self.l2_mode is None:
            return "DeepCTR 0.9.4 (reference)"
        return f"fefm-lab, l2_mode={self.l2_mode}{PATH_LABELS[self.path]}"


PATH_LABELS = {
    TRAINER: "",
    FIT_KERAS: ", fit + keras.optimizers.Adagrad",
    FIT_ROW_SPARSE: ", fit + fefm_lab.RowSparseAdagrad",
}
SIDES = [
    Side("deepctr", None),
    Side("fefm-lab", "table"),
    Side("fefm-lab", "batch"),
    Side("fefm-lab", "batch", FIT_KERAS),
    Side("fefm-lab", "batch", FIT_ROW_SPARSE),
]


def parse_shape(text: str) -> tuple[int, tuple[int, ...]]:
    """'16:256,128,64' -> (16, (256, 128, 64))."""
    k_text, units_text = text.split(":")
    return int(k_text), tuple(int(unit) for unit in units_text.split(","))


def paper_hyperparameters() -> dict:
    """The spec's training settings, from the configuration (`PAPER_PRESET`), not a copy."""
    from fefm_lab.config.compose import compose_config

    cfg = compose_config(list(PAPER_PRESET))
    model, trainer = cfg.model, cfg.trainer
    if trainer.optimizer != "adagrad":
        raise ValueError(f"the reference trains with AdaGrad; the preset says {trainer.optimizer}")
    return {
        "learning_rate": float(trainer.learning_rate),
        "l2_reg_linear": float(model.l2_reg_linear),
        "l2_reg_embedding_feat": float(model.l2_reg_embedding_feat),
        "l2_reg_embedding_field": float(model.l2_reg_embedding_field),
        "l2_reg_dnn": float(model.l2_reg_dnn),
        "dnn_dropout": float(model.dnn_dropout),
        "batch_size": int(trainer.batch_size),
        "eval_batch_size": int(trainer.eval_batch_size),
        "min_delta": float(trainer.early_stopping.min_delta),
        "patience": int(trainer.early_stopping.patience),
    }


def ensure_peer_venv(venv: Path) -> Path:
    """The reference venv's python, creating the venv with pip when it is missing or broken."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import deepctr.models, tensorflow, numpy"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    print(f"creating the reference environment {venv} ({', '.join(PEER_REQUIREMENTS)})")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS], check=True)
    subprocess.run(probe, check=True)
    return python


def dataset_config(smoke: bool, synthetic_rows: int) -> tuple[dict, str]:
    """The dataset to prepare and a sentence saying what it is."""
    real = os.environ.get("FEFM_LAB_REAL_DATA")
    if real and (Path(real) / "criteo" / "train_10k.txt").is_file() and not smoke:
        path = Path(real) / "criteo" / "train_10k.txt"
        config = {"name": "criteo_sample", "format": "criteo", "path": str(path)}
        return config, f"the real Criteo sample ({path.name}, 10,000 rows)"
    # smoke: enough rows for a few full-size steps, so a steady step interval exists
    rows = 6000 if smoke else synthetic_rows
    config = {
        "name": "criteo_generated",
        "format": "synthetic",
        "synthetic": {"format": "criteo", "rows": rows, "seed": 0},
    }
    return config, f"generated Criteo-format data ({rows:,} rows)"


def export_npz(dataset_cfg: dict, work: Path) -> tuple[Path, dict]:
    """Prepare with fefm-lab, then write every split's encoded arrays to one .npz."""
    from fefm_lab.data.prepare import prepare

    data = prepare(dataset_cfg, seed=0, data_root=work / "prepared", progress=False)
    columns, _ = data.feature_columns(1)
    sparse = [c for c in columns if hasattr(c, "vocabulary_size")]
    dense = [c for c in columns if not hasattr(c, "vocabulary_size")]
    if any(c.dimension != 1 for c in dense):
        raise ValueError("the side-by-side benchmark expects one value per dense column")
    splits = {}
    for split, short in zip(("train", "validation", "test"), SPLITS, strict=True):
        features, labels = data.load_split(split)
        rows = len(labels)
        splits[short] = (
            np.concatenate([features[c.name].reshape(rows, 1) for c in sparse], axis=1),
            np.concatenate([features[c.name] for c in dense], axis=1)
            if dense
            else np.zeros((rows, 0), np.float32),
            labels,
        )
    encoded = EncodedData(
        sparse_names=[c.name for c in sparse],
        dense_names=[c.name for c in dense],
        vocabulary_sizes=[c.vocabulary_size for c in sparse],
        sparse={split: arrays[0] for split, arrays in splits.items()},
        dense={split: arrays[1] for split, arrays in splits.items()},
        labels={split: arrays[2] for split, arrays in splits.items()},
    )
    path = work / "encoded.npz"
    encoded.save(path)
    summary = {
        "fields": len(sparse) + len(dense),
        "sparse_fields": len(sparse),
        "vocabulary_total": int(sum(encoded.vocabulary_sizes)),
        "rows": {split: encoded.rows(split) for split in SPLITS},
    }
    return path, summary


def steady_step_seconds(result: dict, batch_size: int, train_rows: int, warmup: int) -> float:
    """Median time of a full-size step, from step end times inside each epoch.

    Intervals that cross an epoch boundary (evaluation, reshuffling) or end at the epoch's
    partial last batch are left out, then the first `warmup` ones (compilation, caches).
    """
    ends = result["step_ends"]
    boundaries = result["epoch_step_counts"]
    partial_last = train_rows % batch_size != 0 and result.get("full_epochs", True)
    intervals, first = [], 0
    for last in boundaries:
        epoch_ends = ends[first:last]
        usable = epoch_ends[:-1] if partial_last and len(epoch_ends) > 1 else epoch_ends
        intervals += [b - a for a, b in itertools.pairwise(usable)]
        first = last
    return interval_stats(intervals, warmup=warmup).median_seconds


def run_side(side: Side, spec: dict, work: Path, peer_python: Path, tag: str) -> dict:
    """One training run in a fresh worker process; returns its JSON result."""
    spec = {**spec, "predictions_out": str(work / f"pred_{tag}.npy")}
    if side.l2_mode is not None:
        spec["l2_mode"] = side.l2_mode
        spec["path"] = side.path
    spec_path = work / f"spec_{tag}.json"
    spec_path.write_text(json.dumps(spec))
    command = (
        module_command(REFERENCE_SIDE, spec_path, python=peer_python)
        if side.l2_mode is None
        else module_command(FEFM_SIDE, spec_path)
    )
    started = time.perf_counter()
    result = run_json_subprocess(command)
    print(
        f"  {tag}: ready {result['ready_seconds']:.1f} s, "
        f"{len(result['step_ends'])} steps, wall {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--peer-venv", type=Path, default=ROOT / ".bench-peer-venv")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the quality runs")
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--speed-epochs", type=int, default=3, help="epochs of speed-only runs")
    parser.add_argument("--warmup", type=int, default=2, help="step intervals left out")
    parser.add_argument("--synthetic-rows", type=int, default=50_000)
    parser.add_argument(
        "--quality-shape",
        default="16:256,128,64",
        help="k:units of the multi-seed quality runs (the other shapes get one speed run)",
    )
    parser.add_argument(
        "--shapes",
        default=None,
        help="k:units shapes separated by ';' (default: the four Criteo shapes)",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="summarise the runs recorded in an earlier peer.json again (today's targets), "
        "without running anything",
    )


def run(args: argparse.Namespace) -> PartResult:
    from fefm_lab.training import auc, log_loss

    if args.from_json is not None:
        settings = json.loads(args.from_json.read_text())["settings"]
        shapes = list(dict.fromkeys((r["k"], tuple(r["dnn"])) for r in settings["runs"]))
        return part_result(settings, shapes, args.peer_venv.name)

    hyperparameters = paper_hyperparameters()
    batch_size = hyperparameters["batch_size"]
    peer_python = ensure_peer_venv(args.peer_venv)
    shapes = SMOKE_SHAPES if args.smoke else SHAPES
    if args.shapes and not args.smoke:
        shapes = [parse_shape(text) for text in args.shapes.split(";")]
    seeds = 1 if args.smoke else args.seeds
    max_epochs = 1 if args.smoke else args.max_epochs
    speed_epochs = 1 if args.smoke else args.speed_epochs
    warmup = 0 if args.smoke else args.warmup
    quality_shape = shapes[0] if args.smoke else parse_shape(args.quality_shape)

    args.work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.work) as scratch:
        work = Path(scratch)
        dataset_cfg, data_text = dataset_config(args.smoke, args.synthetic_rows)
        npz, data_summary = export_npz(dataset_cfg, work)
        print(f"data: {data_text}: {data_summary}", flush=True)
        train_rows = data_summary["rows"]["train"]
        labels_test = EncodedData.load(npz).labels["test"]
        runs: list[dict] = []
        for k, units in shapes:
            quality = (k, units) == quality_shape
            for side in SIDES:
                mode = side.l2_mode
                for seed in range(seeds if quality else 1):
                    spec = {
                        **hyperparameters,
                        "npz": str(npz),
                        "seed": seed,
                        "embedding_dim": k,
                        "dnn_hidden_units": list(units),
                        "max_epochs": max_epochs if quality else speed_epochs,
                        "steps_per_epoch": None,
                        "evaluate": quality,
                        "l2_mode": mode or "table",
                    }
                    shape_tag = f"k{k}-{'x'.join(map(str, units))}"
                    tag = f"{side.implementation}-{mode or 'ref'}-{side.path}-{shape_tag}-s{seed}"
                    result = run_side(side, spec, work, peer_python, tag)
                    step = steady_step_seconds(result, batch_size, train_rows, warmup)
                    record = {
                        "side": side.label,
                        "l2_mode": mode,
                        "path": side.path,
                        "k": k,
                        "dnn": list(units),
                        "seed": seed,
                        "build_seconds": result["build_seconds"],
                        "ready_seconds": result["ready_seconds"],
                        "step_seconds": step,
                        "samples_per_second": batch_size / step,
                        "epochs": len(result["epoch_step_counts"]),
                        "parameters": result["parameters"],
                    }
                    if quality:
                        predictions = np.load(result["predictions"])
                        record["test_auc"] = auc(labels_test, predictions)
                        record["test_logloss"] = log_loss(labels_test, predictions)
                    runs.append(record)

    settings = {
        "data": data_text,
        "data_summary": data_summary,
        "hyperparameters": hyperparameters,
        "seeds": seeds,
        "max_epochs": max_epochs,
        "speed_epochs": speed_epochs,
        "warmup_intervals": warmup,
        "quality_shape": [quality_shape[0], list(quality_shape[1])],
        "runs": runs,
    }
    return part_result(settings, shapes, args.peer_venv.name)


def part_result(settings: dict, shapes: list, venv_name: str) -> PartResult:
    """The report of a finished comparison: its runs (`settings["runs"]`) summarised."""
    hyperparameters, data_summary = settings["hyperparameters"], settings["data_summary"]
    quality_shape = (settings["quality_shape"][0], tuple(settings["quality_shape"][1]))
    sections, targets = summarise(settings["runs"], shapes, quality_shape, settings["seeds"])
    intro = (
        f"Data: {settings['data']}, prepared once by fefm-lab ({data_summary['fields']} fields, "
        f"{data_summary['vocabulary_total']:,} embedding rows in all; train/validation/test "
        f"{data_summary['rows']['train']:,} / {data_summary['rows']['val']:,} / "
        f"{data_summary['rows']['test']:,} rows), exported once to .npz and read by both sides. "
        "Each run is a fresh process; both sides run one protocol module and see the same "
        "batches in the same order. "
        f"Settings of `{' '.join(PAPER_PRESET)}`: AdaGrad lr {hyperparameters['learning_rate']}, "
        f"batch {hyperparameters['batch_size']}, "
        f"L2 linear {hyperparameters['l2_reg_linear']}, embeddings "
        f"{hyperparameters['l2_reg_embedding_feat']}, field matrices "
        f"{hyperparameters['l2_reg_embedding_field']}, DNN {hyperparameters['l2_reg_dnn']}, "
        f"dropout {hyperparameters['dnn_dropout']}, early stopping on validation log loss "
        f"(min delta {hyperparameters['min_delta']}, patience {hyperparameters['patience']}). "
        "*Ready* = wall time from the start of model construction to the end of "
        "the first training step (graph building and compilation included, TensorFlow import "
        "excluded). *Steady* = batch size / median time of a full-size step inside an epoch."
    )
    return PartResult(
        sections,
        targets,
        intro=intro,
        settings=settings,
        machine={"reference_venv": str(venv_name)},
    )


def summarise(runs, shapes, quality_shape, seeds) -> tuple[list[Section], list[Target]]:
    """Per-shape speed table, quality table over seeds, and the targets. Runs recorded before
    the Keras `fit` paths existed have no `path`: they are the own trainer's."""

    def select(k, units, mode, reference, path=TRAINER):
        return [
            r
            for r in runs
            if r["k"] == k
            and tuple(r["dnn"]) == tuple(units)
            and (
                (r["l2_mode"] is None)
                if reference
                else r["l2_mode"] == mode and r.get("path", TRAINER) == path
            )
        ]

    def median_rate(chosen):
        return statistics.median(r["samples_per_second"] for r in chosen)

    speed_rows, targets = [], []
    for k, units in shapes:
        reference = select(k, units, None, True)
        ref_ready = statistics.median(r["ready_seconds"] for r in reference)
        ref_rate = median_rate(reference)
        trainer_rate = median_rate(select(k, units, "batch", False))
        shape_text = f"k={k}, DNN {'x'.join(map(str, units))}"
        speed_rows.append(
            [shape_text, "DeepCTR 0.9.4 (fit)", ref_ready, ref_rate, "1.00", "1.00", ""]
        )
        for mode, path in (
            ("table", TRAINER),
            ("batch", TRAINER),
            ("batch", FIT_KERAS),
            ("batch", FIT_ROW_SPARSE),
        ):
            mine = select(k, units, mode, False, path)
            if not mine:
                continue
            ready = statistics.median(r["ready_seconds"] for r in mine)
            rate = median_rate(mine)
            speed_rows.append(
                [
                    shape_text,
                    f"fefm-lab l2_mode={mode}{PATH_LABELS[path]}",
                    ready,
                    rate,
                    f"{ref_ready / ready:.1f}",
                    f"{rate / ref_rate:.2f}",
                    f"{rate / trainer_rate:.2f}",
                ]
            )
            if mode == "batch" and path == TRAINER:
                targets.append(
                    Target(
                        f"ready to train sooner, {shape_text}",
                        ref_ready / ready,
                        READY_GOAL,
                        unit="x",
                        note=f"{format_number(ref_ready)} s vs {format_number(ready)} s",
                    )
                )
                targets.append(
                    Target(
                        f"steady throughput, {shape_text}",
                        rate / ref_rate,
                        THROUGHPUT_GOAL,
                        unit="x",
                        note=f"{format_number(rate)} vs {format_number(ref_rate)} samples/s; "
                        f"l2_mode=table: {rate_ratio(select(k, units, 'table', False), ref_rate)}",
                    )
                )
        fit = select(k, units, "batch", False, FIT_ROW_SPARSE)
        if not fit:
            continue
        fit_rate = median_rate(fit)
        stock = select(k, units, "batch", False, FIT_KERAS)
        stock_note = (
            f"; with keras.optimizers.Adagrad: {median_rate(stock):,.0f} samples/s" if stock else ""
        )
        if (k, tuple(units)) in FIT_GOALS:
            targets.append(
                Target(
                    f"Keras fit throughput, {shape_text}",
                    fit_rate / ref_rate,
                    FIT_GOALS[(k, tuple(units))],
                    unit="x",
                    note=f"fit + fefm_lab.RowSparseAdagrad {format_number(fit_rate)} vs "
                    f"the reference's fit {format_number(ref_rate)} samples/s{stock_note}",
                )
            )
        targets.append(
            Target(
                f"Keras fit / own trainer, {shape_text}",
                fit_rate / trainer_rate,
                FIT_OF_TRAINER_GOAL,
                unit="x",
                note=f"fit + fefm_lab.RowSparseAdagrad {format_number(fit_rate)} vs the trainer's "
                f"{format_number(trainer_rate)} samples/s{stock_note}",
            )
        )
    speed = Section(
        "Speed",
        text="Median over runs of each shape. Ratios are fefm-lab over the reference "
        "(ready: reference time / fefm-lab time); *x trainer*: samples/s over fefm-lab's own "
        "trainer's (l2_mode=batch). The reference always trains with Keras's `fit`; fefm-lab "
        "with its own trainer, and with `fit` compiled with the stock "
        "`keras.optimizers.Adagrad` or with `fefm_lab.RowSparseAdagrad`.",
        headers=[
            "shape",
            "implementation",
            "ready (s)",
            "steady samples/s",
            "ready x",
            "speed x",
            "x trainer",
        ],
        rows=speed_rows,
        data={"rows": speed_rows},
    )

    k, units = quality_shape
    speed.data["quality_shape_run"] = (k, units) in [tuple(shape) for shape in shapes]
    if (k, units) not in [(shape[0], tuple(shape[1])) for shape in shapes]:
        return [speed], targets
    quality_rows, means = [], {}
    candidates = [
        (None, True, TRAINER, "DeepCTR 0.9.4 (fit)"),
        *(
            (mode, False, path, f"fefm-lab l2_mode={mode}{PATH_LABELS[path]}")
            for mode, path in (
                ("table", TRAINER),
                ("batch", TRAINER),
                ("batch", FIT_KERAS),
                ("batch", FIT_ROW_SPARSE),
            )
        ),
    ]
    for mode, reference, path, name in candidates:
        chosen = select(k, units, mode, reference, path)
        if not chosen:
            continue
        aucs = [r["test_auc"] for r in chosen]
        losses = [r["test_logloss"] for r in chosen]
        means[(mode, path)] = statistics.fmean(aucs)
        spread = statistics.stdev(aucs) if len(aucs) > 1 else float("nan")
        quality_rows.append(
            [
                name,
                len(aucs),
                f"{statistics.fmean(aucs):.5f}",
                f"{spread:.5f}",
                f"{statistics.fmean(losses):.5f}",
                ", ".join(f"{a:.4f}" for a in aucs),
                ", ".join(str(r["epochs"]) for r in chosen),
            ]
        )
    for mode, path, what in (
        ("batch", TRAINER, "l2_mode=batch"),
        ("table", TRAINER, "l2_mode=table"),
        ("batch", FIT_ROW_SPARSE, "Keras fit + fefm_lab.RowSparseAdagrad"),
    ):
        if (mode, path) not in means:
            continue
        mean, reference_mean = means[(mode, path)], means[(None, TRAINER)]
        targets.append(
            Target(
                f"test AUC vs reference (mean of {seeds} seeds), {what}",
                mean - reference_mean,
                AUC_GAP_GOAL,
                note=f"{mean:.5f} vs {reference_mean:.5f}; AUC difference, goal >= {AUC_GAP_GOAL}",
            )
        )
    quality = Section(
        f"Quality (k={k}, DNN {'x'.join(map(str, units))}, {seeds} seeds)",
        text="Exact test AUC and log loss from all test predictions (scikit-learn), the same "
        "code for both implementations, best validation epoch restored.",
        headers=[
            "implementation",
            "seeds",
            "AUC mean",
            "AUC std",
            "log loss mean",
            "AUC per seed",
            "epochs per seed",
        ],
        rows=quality_rows,
        data={"rows": quality_rows},
    )
    return [speed, quality], targets


def rate_ratio(runs: list[dict], ref_rate: float) -> str:
    rate = statistics.median(r["samples_per_second"] for r in runs)
    return f"{rate / ref_rate:.2f}x"


PART = Part(
    "peer",
    "side by side with DeepCTR 0.9.4's DeepFEFM (own venv, own report)",
    add_arguments,
    run,
    in_bench_report=False,
    title="fefm-lab versus DeepCTR 0.9.4 (reference DeepFEFM)",
)
