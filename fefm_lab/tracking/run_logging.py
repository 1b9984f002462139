"""What one job writes into its MLflow run: params, tags, metrics and artifacts."""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from fefm_lab.tracking.confighash import flatten
from fefm_lab.uris import masked_text

# MLflow refuses longer parameter values; longer ones are cut and marked.
MAX_PARAM_LENGTH = 6000
BATCH_LIMIT = 100
EPOCH_METRICS = ("train_logloss", "val_logloss", "val_auc")
# Logged every trainer.log_every_steps steps, step = global step: the live training curve.
STEP_METRICS = ("step_train_logloss", "step_samples_per_second")
TAG_DEVICE = "device"  # what TensorFlow trained on: CPU, or GPU:0 (its name)
FINAL_METRICS = (
    "test_auc",
    "test_logloss",
    "best_val_auc",
    "best_val_logloss",
    "best_epoch",
    "num_params",
    "train_seconds",
    "samples_per_second",
)


def param_value(value: Any) -> str:
    """Lists and null as JSON (`[64, 32]`, `null`), the rest as str, URIs masked; cut at
    MLflow's limit."""
    text = json.dumps(value) if isinstance(value, list | tuple) or value is None else str(value)
    text = masked_text(text)
    if len(text) > MAX_PARAM_LENGTH:
        text = text[: MAX_PARAM_LENGTH - 3] + "..."
    return text


def log_params(client: MlflowClient, run_id: str, resolved: Mapping[str, Any]) -> None:
    """Every resolved config value, flattened to dotted keys (`model.embedding_dim`); URIs are
    masked (`param_value`), so a password in `tune.storage` or a tracking URI is not logged."""
    params = [Param(key, param_value(value)) for key, value in flatten(resolved).items()]
    for start in range(0, len(params), BATCH_LIMIT):
        client.log_batch(run_id, params=params[start : start + BATCH_LIMIT])


def log_metrics(
    client: MlflowClient, run_id: str, values: Mapping[str, float], step: int = 0
) -> None:
    """Finite values only (MLflow stores NaN, but a NaN 'best' would mislead the table)."""
    now = int(time.time() * 1000)
    metrics = [
        Metric(key, float(value), now, step)
        for key, value in values.items()
        if value is not None and math.isfinite(float(value))
    ]
    if metrics:
        client.log_batch(run_id, metrics=metrics)


def log_epoch(client: MlflowClient, run_id: str, epoch: int, record: Mapping[str, float]) -> None:
    """Per-epoch train/validation log loss and validation AUC, step = epoch."""
    wanted = {key: record[key] for key in (*EPOCH_METRICS, "seconds") if key in record}
    if "seconds" in wanted:
        wanted["epoch_seconds"] = wanted.pop("seconds")
    log_metrics(client, run_id, wanted, step=epoch)


def log_step(client: MlflowClient, run_id: str, step: int, values: Mapping[str, float]) -> None:
    """Mean train log loss of the last steps and samples/s, at step = global step."""
    log_metrics(
        client,
        run_id,
        {
            "step_train_logloss": values["train_logloss"],
            "step_samples_per_second": values["samples_per_second"],
        },
        step=step,
    )


def log_text(client: MlflowClient, run_id: str, text: str, artifact_file: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(artifact_file).name
        path.write_text(text)
        parent = str(Path(artifact_file).parent)
        client.log_artifact(run_id, str(path), None if parent == "." else parent)


def git_commit(folder: Path | None = None) -> str:
    """The commit of the checkout fefm-lab runs from (with `-dirty`), or `unknown`."""
    folder = folder or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit
