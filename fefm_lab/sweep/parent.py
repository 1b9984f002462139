"""A sweep's parent run in the tracking store: open it, find it from a job, close what is open.

One launch of a sweep (an *invocation*) is named by a random token that `fefm-lab run -m` hands
to every job as `sweep.invocation`; the parent run carries it as a tag. Jobs, wherever the
launcher runs them, find their parent run by that tag (no process shares memory with another),
and so does the launching process when it has to close the sweep after a failure.
"""

from __future__ import annotations

import json

from mlflow.entities import Run

from fefm_lab.tracking.store import (
    ROLE_SWEEP,
    TAG_OUTCOME,
    TAG_REASON,
    TAG_ROLE,
    TAG_SWEEP,
    TAG_VALUE_LIMIT,
    TrackingStore,
)

TAG_INVOCATION = "sweep_invocation"  # the token of the launch that has the parent open
# parent tag `unrun.<job key>` = {"run": name, "reason": why}: a job of this launch that failed
# before it could open a run (its data could not be prepared, for one)
UNRUN_PREFIX = "unrun."


def _quote(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


def open_parent(
    store: TrackingStore, name: str, invocation: str, tags: dict[str, str]
) -> tuple[str, bool]:
    """Resume the sweep's parent run (status back to RUNNING) or create it; (run id, resumed).

    Either way it is tagged with this invocation's token, so this launch's jobs file under it.
    """
    existing = store.sweep_parent(name)
    if existing is not None:
        run_id = existing.info.run_id
        store.client.update_run(run_id, status="RUNNING")
        for key in existing.data.tags:  # the last launch's ending no longer applies
            if key in (TAG_OUTCOME, TAG_REASON) or key.startswith(UNRUN_PREFIX):
                store.client.delete_tag(run_id, key)
        for key, value in {**tags, TAG_INVOCATION: invocation}.items():
            store.client.set_tag(run_id, key, value)
        return run_id, True
    run = store.client.create_run(
        store.experiment_id,
        run_name=f"sweep {name}",
        tags={**tags, TAG_ROLE: ROLE_SWEEP, TAG_SWEEP: name, TAG_INVOCATION: invocation},
    )
    return run.info.run_id, False


def parent_of(store: TrackingStore, invocation: str) -> Run | None:
    """The parent run that this invocation opened, or None if it never opened one."""
    runs = store.search(
        f"tags.{TAG_INVOCATION} = {_quote(invocation)} and tags.{TAG_ROLE} = '{ROLE_SWEEP}'"
    )
    return runs[-1] if runs else None


def record_unrun(
    store: TrackingStore, parent_run_id: str, job_key: str, name: str, reason: str
) -> None:
    """Note on the parent a job that failed before opening a run (so the summary lists it)."""
    value = json.dumps({"run": name, "reason": reason[: TAG_VALUE_LIMIT - 1000]})
    store.client.set_tag(parent_run_id, f"{UNRUN_PREFIX}{job_key}", value)


def unrun_jobs(parent: Run) -> list[dict[str, str]]:
    """The jobs of the parent's current launch that failed before opening a run."""
    return [
        json.loads(value)
        for key, value in sorted(parent.data.tags.items())
        if key.startswith(UNRUN_PREFIX)
    ]


def close_in_flight(
    store: TrackingStore, parent_run_id: str, status: str, reason: str
) -> list[str]:
    """End the parent's children that are still RUNNING (their launcher is gone); their ids."""
    closed = []
    for child in store.children(parent_run_id):
        if child.info.status != "RUNNING":
            continue
        run_id = child.info.run_id
        store.end_run(run_id, status.lower(), reason)
        closed.append(run_id)
    return closed
