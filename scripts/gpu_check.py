"""Train the paper preset for a fixed number of steps and write what the device did.

Run by `scripts/gpu_check.sh` (which sets up the environment and the data file); usable alone:

    python scripts/gpu_check.py --data criteo_synthetic.txt --steps 2000 --device gpu

Writes `<out>/gpu_check_<device>.json` and `.md`: samples/s (over the whole run and steady, the
median of the step-level windows after the first), peak GPU memory as TensorFlow counts it (and
the card's total), the test AUC and log loss on the full test split, and the software versions.
The process exits non-zero when the run did not finish or, with --device gpu, did not run on a GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="raw Criteo-format TSV file")
    parser.add_argument("--steps", type=int, default=2000, help="training steps (one epoch)")
    parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--root", type=Path, default=Path(".gpu-check"), help="paths.root_dir")
    parser.add_argument("--out", type=Path, default=Path("results/gpu"))
    parser.add_argument(
        "--override", action="append", default=[], help="extra fefm-lab override (repeatable)"
    )
    return parser.parse_args(argv)


def _nvidia_smi() -> dict[str, str]:
    query = "name,memory.total,driver_version"
    try:
        line = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired, IndexError):
        return {}
    name, total, driver = (part.strip() for part in line.split(","))
    return {"gpu": name, "gpu_memory_total": total, "nvidia_driver": driver}


def _rows(data: Path) -> int | None:
    """Rows of the synthetic file, from the manifest `fefm-lab synth` wrote beside it."""
    manifest = data.with_name(data.name + ".synth.json")
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text()).get("rows")


def _peak_gpu_bytes() -> int | None:
    import tensorflow as tf

    if not tf.config.list_logical_devices("GPU"):
        return None
    return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    from fefm_lab import cli
    from fefm_lab.markdown import markdown_table
    from fefm_lab.tracking.store import open_store

    root = args.root.absolute()
    overrides = [
        "experiment=paper_criteo",
        f"dataset.path={args.data.absolute()}",
        "trainer.max_epochs=1",
        f"trainer.steps_per_epoch={args.steps}",
        f"trainer.device={args.device}",
        "trainer.progress=lines",
        "trainer.log_every_steps=50",
        f"paths.root_dir={root}",
        f"mlflow.tracking_uri=sqlite:///{root}/mlflow.db",
        "mlflow.experiment=gpu_check",
        "force=true",
        *args.override,
    ]
    started = time.time()
    code = cli.main(["run", *overrides])
    wall = time.time() - started
    if code != 0:
        print(f"gpu_check: fefm-lab run exited {code}", file=sys.stderr)
        return code

    store = open_store(f"sqlite:///{root}/mlflow.db", "gpu_check")
    run = store.search()[-1]
    metrics, tags = run.data.metrics, run.data.tags
    windows = store.client.get_metric_history(run.info.run_id, "step_samples_per_second")
    steady = [m.value for m in sorted(windows, key=lambda m: m.step)[1:]]
    import tensorflow as tf

    peak = _peak_gpu_bytes()
    result = {
        "device": tags.get("device", "unknown"),
        "steps": args.steps,
        "batch_size": int(run.data.params["trainer.batch_size"]),
        "samples_per_second": metrics["samples_per_second"],
        "steady_samples_per_second": statistics.median(steady) if steady else None,
        "train_seconds": metrics["train_seconds"],
        "peak_gpu_memory_gib": None if peak is None else peak / 2**30,
        "test_auc": metrics["test_auc"],
        "test_logloss": metrics["test_logloss"],
        "wall_seconds_with_data_and_evaluation": wall,
        "data_file": str(args.data),
        "data_rows": _rows(args.data),
        "tensorflow": tf.__version__,
        "cuda_build": bool(tf.test.is_built_with_cuda()),
        "python": platform.python_version(),
        "mlflow_run": run.info.run_id,
        **_nvidia_smi(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"gpu_check_{args.device}"
    from fefm_lab.fileio import atomic_write_text

    atomic_write_text(stem.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    rows = [(key, "" if value is None else value) for key, value in result.items()]
    text = (
        f"# Device check: paper preset, {args.steps} steps on {result['device']}\n\n"
        "Generated by `scripts/gpu_check.sh` (`scripts/gpu_check.py`).\n\n"
        + markdown_table(rows, ["what", "value"])
        + "\n"
    )
    atomic_write_text(stem.with_suffix(".md"), text)
    print(text)
    if args.device == "gpu" and not result["device"].startswith("GPU"):
        print(f"gpu_check: the run used {result['device']}, not a GPU", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
