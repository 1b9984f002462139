"""What the cluster sweep tests run and check: tiny sweeps, the `fefm-lab` command, and the
checks of a finished sweep's runs and report (shared by the Ray, submitit and Slurm tests)."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import cluster_services as services

from fefm_lab.tracking.store import open_store
from tests.sweep.sweep_process import TINY_STUDY, adaptive_outcome

# 15 steps per epoch: enough training that no run ends worse than the constant predictor
# (fefm_lab.training.divergence fails such runs; 3 steps left some there)
TINY = ["debug=tiny", "dataset.synthetic.rows=3000", "trainer.steps_per_epoch=15", "threads=1"]
SWEEP = ["ablation=none,no_linear", "seed=1,2"]
CONFIGS = {("none", "1"), ("none", "2"), ("no_linear", "1"), ("no_linear", "2")}
# An adaptive-seeds study whose `asymmetric` stays unresolved on two seeds: a second look adds
# seed 3 to both points
ADAPTIVE_STUDY = [
    "hydra/sweeper=adaptive_seeds", "ablation=none,asymmetric", *TINY_STUDY, "threads=1",
]  # fmt: skip


def fefm_lab(*arguments: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [str(services.VENV_BIN / "fefm-lab"), *arguments],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


def explain(result: subprocess.CompletedProcess) -> str:
    out, err = result.stdout[-4000:], result.stderr[-8000:]
    return f"exit {result.returncode}\nstdout:\n{out}\nstderr:\n{err}"


def job_runs(store) -> list:
    return store.search("tags.role = 'job'")


def by_config(runs) -> dict[tuple[str, str], object]:
    found = {}
    for run in runs:
        key = (run.data.tags["ablation"], run.data.tags["seed"])
        assert key not in found, f"two runs for {key}"
        found[key] = run
    return found


def finished_sweep(uri: str, experiment: str) -> tuple[object, object, dict]:
    """The experiment's one sweep, checked: its parent run FINISHED with one FINISHED child per
    configuration of CONFIGS. Returns the store, the parent run and the children by config."""
    store = open_store(uri, experiment)
    (parent,) = store.search("tags.role = 'sweep'")
    children = store.children(parent.info.run_id)
    assert len(children) == 4 and {c.info.status for c in children} == {"FINISHED"}
    parent = store.client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED"
    configs = by_config(children)
    assert set(configs) == CONFIGS
    return store, parent, configs


def report_rows(uri: str, experiment: str, root: Path) -> tuple[str, dict]:
    result = fefm_lab(
        "report", f"mlflow.tracking_uri={uri}", f"mlflow.experiment={experiment}",
        f"paths.root_dir={root}", cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, explain(result)
    table = root / "results" / experiment / "ablation_table.csv"
    with table.open() as handle:
        rows = {row["ablation"]: row for row in csv.DictReader(handle)}
    return table.read_text(), rows


def adaptive_study_like_basic(
    launcher: list[str], server, root: Path, experiment: str
) -> subprocess.CompletedProcess:
    """ADAPTIVE_STUDY through `launcher` into `server`, then with the basic launcher into SQLite:
    the same seeds added, runs' metrics, verdicts and settings, after two looks. The first
    command's result, for the launcher's own checks."""
    tracking = [f"mlflow.tracking_uri={server.uri}", f"mlflow.experiment={experiment}"]
    result = fefm_lab(
        "run", "-m", *ADAPTIVE_STUDY, *launcher, *tracking, f"paths.root_dir={root}/cluster",
        cwd=root / "cluster",
    )  # fmt: skip
    assert result.returncode == 0, explain(result)
    basic = root / "basic"
    reference = fefm_lab(
        "run", "-m", *ADAPTIVE_STUDY, f"mlflow.experiment={experiment}",
        f"paths.root_dir={basic}", cwd=basic,
    )  # fmt: skip
    assert reference.returncode == 0, explain(reference)
    on_cluster = adaptive_outcome(open_store(server.uri, experiment))
    assert on_cluster == adaptive_outcome(open_store(f"sqlite:///{basic}/mlflow.db", experiment))
    metrics, verdicts, settings = on_cluster
    assert sorted(metrics) == [(a, s) for a in ("asymmetric", "none") for s in (1, 2, 3)]
    assert verdicts["asymmetric"][0] == 3 and settings["looks_taken"] == 2
    return result
