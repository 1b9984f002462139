"""The tracking store: experiment creation, run lookup by config hash, sweep parent runs.

Everything goes through `MlflowClient` with explicit run ids (never the fluent active-run
state), so jobs that share a worker process cannot leak runs into each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

# Tag names (plain words: they are what people filter on in the UI).
TAG_ROLE = "role"  # "job" | "sweep"
TAG_OUTCOME = "outcome"  # "finished" | "skipped" | "failed" | "killed"
TAG_REASON = "reason"  # why a run failed or was skipped
TAG_CONFIG_HASH = "config_hash"
TAG_SWEEP = "sweep"
TAG_PARENT = "mlflow.parentRunId"
ROLE_JOB = "job"
ROLE_SWEEP = "sweep"


def _artifact_uri(location: str | None) -> str | None:
    if location is None or "://" in location:
        return location
    return Path(location).expanduser().resolve().as_uri()


def _quote(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


@dataclass
class TrackingStore:
    """One MLflow experiment in one tracking store."""

    client: MlflowClient
    experiment_id: str
    experiment_name: str
    tracking_uri: str

    def search(self, filter_string: str = "", max_results: int = 50_000) -> list[Run]:
        """All runs of the experiment matching an MLflow filter, oldest first."""
        runs: list[Run] = []
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=filter_string,
                max_results=min(max_results, 1000),
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token or len(runs) >= max_results:
                return runs

    def finished_run_with_hash(self, config_hash: str) -> Run | None:
        """The latest FINISHED job run of this config hash (skipped ones included), or None."""
        runs = self.search(
            f"tags.{TAG_CONFIG_HASH} = {_quote(config_hash)} "
            f"and tags.{TAG_ROLE} = '{ROLE_JOB}' and attributes.status = 'FINISHED'"
        )
        return runs[-1] if runs else None

    def sweep_parent(self, sweep_name: str) -> Run | None:
        """The parent run of a sweep of this name, if one was started before."""
        runs = self.search(
            f"tags.{TAG_SWEEP} = {_quote(sweep_name)} and tags.{TAG_ROLE} = '{ROLE_SWEEP}'"
        )
        return runs[-1] if runs else None

    def children(self, parent_run_id: str) -> list[Run]:
        """The job runs filed under a sweep's parent run, oldest first."""
        return self.search(f"tags.{TAG_PARENT} = {_quote(parent_run_id)}")


def open_store(
    tracking_uri: str, experiment_name: str, artifact_location: str | None = None
) -> TrackingStore:
    """Connect, creating the database and the experiment if they do not exist yet.

    Call this once in the launching process before jobs start: parallel jobs creating a fresh
    SQLite database race on its schema migrations.
    """
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        experiment_id = client.create_experiment(
            experiment_name, artifact_location=_artifact_uri(artifact_location)
        )
    else:
        experiment_id = experiment.experiment_id
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment_id)
    return TrackingStore(client, experiment_id, experiment_name, tracking_uri)
