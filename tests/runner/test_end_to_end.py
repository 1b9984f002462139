"""End to end through `fefm_lab.cli.main` in-process (Hydra included) on tiny synthetic data."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from fefm_lab import cli
from fefm_lab.config.compose import compose_config, job_of
from fefm_lab.kernels.fefm_interaction import instruction_set
from fefm_lab.runner import prepare_data, run_job
from fefm_lab.tracking.confighash import run_identity
from fefm_lab.tracking.store import open_store

TINY = ["debug=tiny", "dataset.synthetic.rows=3000"]
EPOCH_METRICS = {"train_logloss", "val_logloss", "val_auc"}
FINAL_METRICS = {
    "test_auc",
    "test_logloss",
    "best_val_auc",
    "best_val_logloss",
    "num_params",
    "train_seconds",
    "samples_per_second",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runner")


def _args(root: Path, experiment: str, *more: str) -> list[str]:
    return [*TINY, f"paths.root_dir={root}", f"mlflow.experiment={experiment}", *more]


def _store(root: Path, experiment: str):
    return open_store(f"sqlite:///{root}/mlflow.db", experiment)


def test_single_run_records_params_tags_metrics_artifacts(root, capsys) -> None:
    assert cli.main(["run", *_args(root, "single")]) == 0
    out = capsys.readouterr().out
    store = _store(root, "single")
    (run,) = store.search()
    assert run.info.status == "FINISHED"
    assert run.info.run_id in out
    ui_line = f"look at it    fefm-lab ui mlflow.tracking_uri=sqlite:///{root}/mlflow.db"
    assert f"{ui_line} mlflow.experiment=single   (serves http://127.0.0.1:" in out
    metrics = run.data.metrics
    assert f"test AUC      {metrics['test_auc']:.5f}" in out
    assert f"test log loss {metrics['test_logloss']:.5f}" in out

    params = run.data.params
    assert params["model.embedding_dim"] == "4" and params["model.dnn_hidden_units"] == "[8]"
    assert params["trainer.early_stopping.min_delta"] == "5e-06"
    assert params["seed"] == "1" and params["dataset.name"] == "synthetic"
    tags = run.data.tags
    assert (tags["model"], tags["ablation"], tags["dataset"], tags["seed"]) == (
        "deepfefm", "none", "synthetic", "1",
    )  # fmt: skip
    assert tags["sweep"] == "none" and len(tags["config_hash"]) == 16
    assert tags["fefm_lab_version"] == "0.1.0" and tags["git_commit"]
    # the instruction set the fused FEFM kernel ran (CI builds it), a tag of its own
    assert tags["kernels.isa"] == instruction_set() and tags["kernels.isa"] in tags["fefm_path"]
    assert set(metrics) >= FINAL_METRICS
    assert 0.0 < metrics["test_auc"] < 1.0 and metrics["num_params"] > 0
    client = MlflowClient(store.tracking_uri)
    for key in EPOCH_METRICS:
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "feature_map.json", "model", "training_curve.png"} <= artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == [
        "model/model.keras"
    ]

    # the same run again: skipped as already FINISHED, no new run
    assert cli.main(["run", *_args(root, "single")]) == 0
    captured = capsys.readouterr()
    assert "already FINISHED" in captured.err and run.info.run_id in captured.out
    assert len(store.search()) == 1


@pytest.mark.slow  # about 75 s on 2 loaded cores: four training jobs, a resume, the report
def test_sweep_children_resume_and_report(root, capsys) -> None:
    sweep = ["run", "-m", "ablation=none,no_linear", "seed=1,2", *_args(root, "sweep")]
    assert cli.main(sweep) == 0
    printed = capsys.readouterr().out
    store = _store(root, "sweep")
    (parent,) = store.search("tags.role = 'sweep'")
    children = store.children(parent.info.run_id)
    assert len(children) == 4 and {c.info.status for c in children} == {"FINISHED"}
    assert {(c.data.tags["ablation"], c.data.tags["seed"]) for c in children} == {
        ("none", "1"), ("none", "2"), ("no_linear", "1"), ("no_linear", "2"),
    }  # fmt: skip
    parent = store.client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["runs_finished"] == 4
    # the end of the sweep: the ablation report on the parent run and the UI comparison link
    assert parent.data.tags["report"] == "logged"
    assert "| synthetic | deepfefm | no_linear | 2 |" in printed
    link = printed.split("compare sweep", 1)[1].splitlines()[1].strip()
    assert link.startswith("http://127.0.0.1:5000/#/compare-runs?runs=")
    assert all(c.info.run_id in link for c in children)

    capsys.readouterr()
    assert cli.main(sweep) == 0  # resume: nothing left to do
    assert "already FINISHED" in capsys.readouterr().err
    assert len(store.search()) == 5  # the same parent, the same four children

    assert cli.main(["report", *_args(root, "sweep")]) == 0
    out_dir = root / "results" / "sweep"
    with (out_dir / "ablation_table.csv").open() as handle:
        rows = {row["ablation"]: row for row in csv.DictReader(handle)}
    for ablation in ("none", "no_linear"):
        aucs = np.array(
            [c.data.metrics["test_auc"] for c in children if c.data.tags["ablation"] == ablation]
        )
        assert int(rows[ablation]["runs"]) == 2
        assert float(rows[ablation]["auc_mean"]) == pytest.approx(aucs.mean(), abs=1e-12)
        assert float(rows[ablation]["auc_std"]) == pytest.approx(aucs.std(ddof=1), abs=1e-12)
    assert (out_dir / "ablation_chart.png").stat().st_size > 0
    assert 'id="ablation-table"' in (out_dir / "ablation_report.html").read_text()
    assert "no_linear" in (out_dir / "ablation_table.md").read_text()
    logged = {a.path for a in store.client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/ablation_table.csv", "report/ablation_report.html"} <= logged


@pytest.mark.slow  # about 25 s on 2 loaded cores: a two-job sweep
def test_failed_job_is_recorded_and_the_sweep_goes_on(root, monkeypatch, capsys) -> None:
    import fefm_lab.training as training

    real_fit = training.fit_and_evaluate

    def diverge_without_linear(model, data, config, *, seed, **callbacks):
        if not any("linear" in layer.name for layer in model.layers):
            raise training.TrainingDiverged("training loss became nan in epoch 1")
        return real_fit(model, data, config, seed=seed, **callbacks)

    monkeypatch.setattr(training, "fit_and_evaluate", diverge_without_linear)
    arguments = ["run", "-m", "ablation=none,no_linear", "seed=3", *_args(root, "failing")]
    assert cli.main(arguments) == 1
    err = capsys.readouterr().err
    assert "1 run(s) failed" in err and "TrainingDiverged: training loss became nan" in err
    runs = _store(root, "failing").search("tags.role = 'job'")
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]
    failed = next(r for r in runs if r.info.status == "FAILED")
    assert failed.data.tags["ablation"] == "no_linear"
    assert failed.data.tags["reason"].startswith("TrainingDiverged")
    # the job's own line as it failed, and the sweep's summary at the end
    assert f"run {failed.info.run_id} FAILED: TrainingDiverged" in err
    assert err.count("TrainingDiverged: training loss became nan") == 2


@pytest.mark.slow  # one tiny job through the command line
def test_a_failed_single_run_says_why_once_and_records_it(root, monkeypatch, capsys) -> None:
    import fefm_lab.training as training

    def diverge(*args, **kwargs):
        raise training.TrainingDiverged("training loss became nan in epoch 1")

    monkeypatch.setattr(training, "fit_and_evaluate", diverge)
    assert cli.main(["run", *_args(root, "failing_once"), "seed=5"]) == 1
    err = capsys.readouterr().err
    (run,) = _store(root, "failing_once").search()
    reason = "TrainingDiverged: training loss became nan in epoch 1"
    assert err.endswith(f"run {run.info.run_id} FAILED: {reason}\n")
    assert err.count(reason) == 1
    assert run.info.status == "FAILED" and run.data.tags["reason"] == reason
    assert run.data.tags["outcome"] == "failed"


def test_interrupt_marks_the_run_killed(root, monkeypatch) -> None:
    import fefm_lab.training as training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "fit_and_evaluate", interrupted)
    job = job_of(compose_config([*_args(root, "killed"), "seed=9"]))
    with pytest.raises(KeyboardInterrupt):
        run_job(job)
    (run,) = _store(root, "killed").search()
    assert run.info.status == "KILLED" and run.data.tags["outcome"] == "killed"
    assert run.data.tags["reason"] == "interrupted (Ctrl-C)"
    assert math.isnan(run.data.metrics.get("test_auc", math.nan))
    # the run recorded is the interrupted configuration: its seed and config hash
    assert run.data.tags["seed"] == run.data.params["seed"] == "9"
    identity = run_identity(job.values, prepare_data(job).manifest)
    assert run.data.tags["config_hash"] == identity.config_hash


@pytest.mark.real_data
@pytest.mark.parametrize(
    "name,relative", [("criteo", "criteo/train_10k.txt"), ("avazu", "avazu/train_5k.csv")]
)
def test_short_run_on_the_real_samples(name, relative, real_data_dir, root, capsys) -> None:
    arguments = [
        "run",
        "debug=tiny",
        f"dataset={name}",
        f"dataset.path={real_data_dir / relative}",
        f"paths.root_dir={root}",
        "mlflow.experiment=real",
    ]
    assert cli.main(arguments) == 0
    assert "test AUC" in capsys.readouterr().out
    runs = _store(root, "real").search(f"tags.dataset = '{name}'")
    assert runs[-1].info.status == "FINISHED" and 0.0 < runs[-1].data.metrics["test_auc"] < 1.0


@pytest.mark.slow
def test_joblib_launcher_two_jobs_at_once_loses_and_duplicates_nothing(root) -> None:
    arguments = [
        "run", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
        "ablation=none,no_linear", "seed=4,5", *_args(root, "joblib"),
    ]  # fmt: skip
    assert cli.main(arguments) == 0
    store = _store(root, "joblib")
    (parent,) = store.search("tags.role = 'sweep'")
    children = store.children(parent.info.run_id)
    assert len(children) == 4 and {c.info.status for c in children} == {"FINISHED"}
    assert len({c.data.tags["config_hash"] for c in children}) == 4
    expected_threads = str(max(1, (os.cpu_count() or 1) // 2))  # cores / jobs, per worker
    assert {c.data.params["threads"] for c in children} == {expected_threads}
