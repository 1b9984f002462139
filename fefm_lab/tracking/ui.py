"""The MLflow UI one link away: experiment kind and description, comparison links, lean server.

MLflow 3.x's UI opens in its GenAI layout unless an experiment says it is model training: the
experiment tag `mlflow.experimentKind=custom_model_development` and the URL parameter
`workflowType=machine_learning` select the model-training layout. The page
`#/compare-runs?runs=[...]&experiments=[...]` puts chosen runs side by side with their parameter
and metric tables (test AUC and log loss included) without further clicks. The server started
with `MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false` and one worker has no job runner and no worker
pool: one server process instead of about ten.
"""

from __future__ import annotations

import json
import os
import sys
from urllib.parse import quote

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from fefm_lab.tracking.store import TAG_ROLE, TAG_SWEEP, TrackingStore, _quote

KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
DESCRIPTION_TAG = "mlflow.note.content"  # the experiment's description in the UI
UI_HOST = "127.0.0.1"
LEAN_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def experiment_description(name: str) -> str:
    """What the experiment holds and how to compare its runs (Markdown, shown by the UI)."""
    return (
        f"fefm-lab experiment `{name}`: DeepFEFM and comparison models, one run per trained "
        "configuration (tags `role=job`, `dataset`, `model`, `ablation`, `seed`).\n\n"
        "A sweep is one parent run (`role=sweep`) with its jobs as child runs. Its artifacts "
        "hold the ablation report under `report/`: `ablation_report.html` (table with paired "
        "differences, 95% confidence intervals, p-values and verdicts; chart), the same table as "
        "Markdown and CSV, and the chart as PNG.\n\n"
        "To compare a sweep's runs side by side, run `fefm-lab ui sweep=NAME` (default: the "
        "latest sweep) and open the link it prints; in this run list, filter with "
        "`tags.sweep = 'NAME'` and add the columns `test_auc` and `test_logloss`."
    )


def describe_experiment(client: MlflowClient, experiment_id: str, name: str) -> None:
    """Mark the experiment as model training and give it a description (an existing one stays)."""
    tags = client.get_experiment(experiment_id).tags
    if tags.get(KIND_TAG) != MODEL_TRAINING_KIND:
        client.set_experiment_tag(experiment_id, KIND_TAG, MODEL_TRAINING_KIND)
    if not tags.get(DESCRIPTION_TAG):
        client.set_experiment_tag(experiment_id, DESCRIPTION_TAG, experiment_description(name))


def tracking_has_experiment(tracking_uri: str, name: str) -> bool:
    """Whether the store holds a live experiment of this name (for read-only commands)."""
    experiment = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(name)
    return experiment is not None and experiment.lifecycle_stage != "deleted"


def ui_base_url(port: int, host: str = UI_HOST) -> str:
    return f"http://{host}:{port}"


def comparison_url(base_url: str, experiment_id: str, run_ids: list[str]) -> str:
    """The UI page that shows `run_ids` side by side (metrics and parameters as tables)."""
    runs = quote(json.dumps(run_ids, separators=(",", ":")), safe="")
    experiments = quote(json.dumps([experiment_id], separators=(",", ":")), safe="")
    return (
        f"{base_url}/#/compare-runs?runs={runs}&experiments={experiments}"
        "&workflowType=machine_learning"
    )


def runs_url(base_url: str, experiment_id: str, sweep: str) -> str:
    """The experiment's run list filtered to one sweep's runs, best test AUC first."""
    search = quote(f"tags.{TAG_SWEEP} = {_quote(sweep)}", safe="")
    return (
        f"{base_url}/#/experiments/{experiment_id}/runs?searchFilter={search}"
        "&orderByKey=metrics.%60test_auc%60&orderByAsc=false&workflowType=machine_learning"
    )


def latest_sweep(store: TrackingStore) -> str | None:
    """The name of the most recently started sweep of the experiment, or None."""
    parents = store.search(f"tags.{TAG_ROLE} = 'sweep'")
    return parents[-1].data.tags.get(TAG_SWEEP) if parents else None


def sweep_comparison_runs(store: TrackingStore, sweep: str) -> list[Run]:
    """The sweep's latest run of each configuration that finished with test metrics."""
    from fefm_lab.report.ablation import runs_frame, sweep_runs

    parent = store.sweep_parent(sweep)
    if parent is None:
        return []
    runs = sweep_runs(store, parent)
    chosen = set(runs_frame(runs).get("run_id", []))
    return sorted((r for r in runs if r.info.run_id in chosen), key=lambda r: r.info.run_name or "")


def sweep_links(store: TrackingStore, sweep: str, port: int) -> list[str]:
    """Printable lines: the comparison link of a sweep's runs and its filtered run list."""
    base = ui_base_url(port)
    runs = sweep_comparison_runs(store, sweep)
    lines = []
    if runs:
        ids = [r.info.run_id for r in runs]
        lines.append(
            f"compare sweep {sweep!r} ({len(ids)} runs, test AUC and log loss side by side):\n"
            f"  {comparison_url(base, store.experiment_id, ids)}"
        )
    else:
        lines.append(f"sweep {sweep!r} has no finished runs to compare yet")
    lines.append(f"its runs in the run list:\n  {runs_url(base, store.experiment_id, sweep)}")
    return lines


def lean_server_command(tracking_uri: str, port: int) -> tuple[list[str], dict[str, str]]:
    """`mlflow ui` on 127.0.0.1 with one worker and no job runner: the command and environment."""
    command = [
        sys.executable, "-m", "mlflow", "ui",
        "--backend-store-uri", tracking_uri,
        "--host", UI_HOST,
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    return command, {**os.environ, **LEAN_SERVER_ENV}
