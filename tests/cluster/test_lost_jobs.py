"""A job whose worker died: its RUNNING run under this launch's parent becomes KILLED."""

from __future__ import annotations

from fefm_lab import cli
from fefm_lab.config.compose import job_of
from fefm_lab.runner import prepare_data, tracking_store
from fefm_lab.sweep.lost_jobs import record_lost_job
from fefm_lab.sweep.parent import open_parent
from fefm_lab.tracking.confighash import run_identity
from fefm_lab.tracking.store import TAG_CONFIG_HASH, TAG_PARENT, TAG_ROLE


def test_the_lost_jobs_run_under_this_launch_is_killed_and_no_other(tmp_path) -> None:
    overrides = ["debug=tiny", "dataset.synthetic.rows=3000", f"paths.root_dir={tmp_path}"]
    cfg = cli.compose_config([*overrides, "seed=3", "sweep.invocation=launch-b"])
    job = job_of(cfg)
    digest = run_identity(job.values, prepare_data(job).manifest).config_hash
    store = tracking_store(job.mlflow)
    parents = {
        token: open_parent(store, f"sweep {token}", token, {})[0]
        for token in ("launch-a", "launch-b")
    }

    def job_run(parent: str, digest: str) -> str:
        tags = {TAG_CONFIG_HASH: digest, TAG_ROLE: "job", TAG_PARENT: parent}
        return store.client.create_run(store.experiment_id, tags=tags).info.run_id

    lost = job_run(parents["launch-b"], digest)
    same_config_other_sweep = job_run(parents["launch-a"], digest)
    other_config = job_run(parents["launch-b"], "0" * 16)

    assert record_lost_job(cfg, "Ray worker died (WorkerCrashedError: gone)") == lost
    run = store.client.get_run(lost)
    assert run.info.status == "KILLED"
    assert run.data.tags["outcome"] == "killed"
    assert run.data.tags["reason"] == "Ray worker died (WorkerCrashedError: gone)"
    for untouched in (same_config_other_sweep, other_config):
        assert store.client.get_run(untouched).info.status == "RUNNING"
    # a job that never opened a run: nothing to mark
    assert record_lost_job(cfg, "again") is None
