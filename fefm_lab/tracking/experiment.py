"""The experiment: got or created safely beside other processes, and described for the MLflow UI
(model-training kind and a description of its runs).

MLflow 3.x's UI opens in its GenAI layout unless the experiment tag
`mlflow.experimentKind=custom_model_development` says it holds model training.
"""

from __future__ import annotations

import random
import time

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
DESCRIPTION_TAG = "mlflow.note.content"  # the experiment's description in the UI


def experiment_description(name: str) -> str:
    """What the experiment holds and how to compare its runs (Markdown, shown by the UI)."""
    return (
        f"fefm-lab experiment `{name}`: DeepFEFM and comparison models, one run per trained "
        "configuration (tags `role=job`, `dataset`, `model`, `ablation`, `seed`).\n\n"
        "A sweep is one parent run (`role=sweep`) with its jobs as child runs. Its artifacts "
        "hold the ablation report under `report/`: `ablation_report.html` (every ablation's test "
        "AUC and log loss with its verdict at the top; paired differences with the intervals "
        "the verdicts read; charts and learning curves), the tables as Markdown and CSV, and the "
        "charts as PNG.\n\n"
        "`fefm-lab ui sweep=NAME` (default: the latest sweep) prints the report's address first, "
        "then the runs side by side; in this run list, filter with "
        "`tags.sweep = 'NAME'` and add the columns `test_auc` and `test_logloss`."
    )


def describe_experiment(client: MlflowClient, experiment_id: str, name: str) -> None:
    """Mark the experiment as model training and give it a description (an existing one stays)."""
    tags = client.get_experiment(experiment_id).tags
    if tags.get(KIND_TAG) != MODEL_TRAINING_KIND:
        set_experiment_tag(client, experiment_id, KIND_TAG, MODEL_TRAINING_KIND)
    if not tags.get(DESCRIPTION_TAG):
        set_experiment_tag(client, experiment_id, DESCRIPTION_TAG, experiment_description(name))


# Tries of a get-or-create or a tag write that lost a race with another process.
RACE_ATTEMPTS = 6


def _lost_a_race(error: MlflowException) -> bool:
    """Whether a write failed because another process wrote the same key first (a unique-key
    violation, or MLflow's RESOURCE_ALREADY_EXISTS)."""
    text = str(error).lower()
    return error.error_code == "RESOURCE_ALREADY_EXISTS" or any(
        word in text for word in ("unique", "already exists", "duplicate key", "integrityerror")
    )


def _pause_after_race(attempt: int) -> None:
    time.sleep(0.05 * 2**attempt * (1 + random.random()))  # jittered: racers part ways


def get_or_create_experiment(
    client: MlflowClient, name: str, artifact_location: str | None = None
) -> str:
    """The id of the live experiment `name`, created (or restored) if needed.

    Another process may create or restore it between our look and our write: that write fails
    with a unique-key error, and a second look finds the experiment.
    """
    for attempt in range(RACE_ATTEMPTS):
        experiment = client.get_experiment_by_name(name)
        try:
            if experiment is None:
                return client.create_experiment(name, artifact_location=artifact_location)
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment.experiment_id)
            return experiment.experiment_id
        except MlflowException as error:
            again = client.get_experiment_by_name(name)
            if again is not None and again.lifecycle_stage != "deleted":
                return again.experiment_id  # the other process's create or restore
            if not _lost_a_race(error) or attempt == RACE_ATTEMPTS - 1:
                raise
            _pause_after_race(attempt)
    raise AssertionError("unreachable")


def set_experiment_tag(client: MlflowClient, experiment_id: str, key: str, value: str) -> None:
    """Set an experiment tag; the same value already there (another process set it at the same
    moment) is success, and a unique-key race is retried."""
    for attempt in range(RACE_ATTEMPTS):
        try:
            client.set_experiment_tag(experiment_id, key, value)
            return
        except MlflowException as error:
            if client.get_experiment(experiment_id).tags.get(key) == value:
                return
            if not _lost_a_race(error) or attempt == RACE_ATTEMPTS - 1:
                raise
            _pause_after_race(attempt)
