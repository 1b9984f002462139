"""The report's files and where they go: results/, the sweep's parent run, the UI link."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pandas as pd
import pytest

from fefm_lab.errors import UserError
from fefm_lab.report.settings import ReportSettings
from fefm_lab.report.write import (
    CHART_NAME,
    CSV_NAME,
    CURVES_NAME,
    HTML_NAME,
    MARKDOWN_NAME,
    RUNS_NAME,
    write_report,
)
from fefm_lab.sweep.finish import finish_sweep
from fefm_lab.tracking.experiment import DESCRIPTION_TAG, KIND_TAG, MODEL_TRAINING_KIND
from fefm_lab.tracking.store import open_store
from fefm_lab.tracking.ui import comparison_url, latest_sweep

# seed -> AUC of `none`; the ablations shift it by a fixed amount plus a per-seed wobble
BASE = {1: 0.781, 2: 0.774, 3: 0.788}
SHIFT = {"none": 0.0, "no_fefm_logit": 0.0, "no_linear": -0.04, "shallow": 0.0002}
WOBBLE = {1: 0.0011, 2: -0.0007, 3: 0.0004}


def _auc(ablation: str, seed: int) -> float:
    return BASE[seed] + SHIFT[ablation] + (WOBBLE[seed] if ablation != "none" else 0.0)


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> str:
    """One database for the module (creating one runs MLflow's migrations: seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('tracking')}/mlflow.db"


@pytest.fixture()
def store(tracking_uri, tmp_path, request):
    """A fresh experiment per test."""
    return open_store(tracking_uri, request.node.name, str(tmp_path / "artifacts"))


def _sweep(store, name: str, code_version: str = "v1", failed: str | None = None) -> str:
    """A sweep's parent run and a FINISHED child per ablation and seed (no training)."""
    parent = store.client.create_run(
        store.experiment_id, run_name=f"sweep {name}", tags={"role": "sweep", "sweep": name}
    ).info.run_id
    for ablation in SHIFT:
        for seed in BASE:
            tags = {
                "role": "job", "sweep": name, "mlflow.parentRunId": parent,
                "dataset": "synthetic", "model": "deepfefm", "ablation": ablation,
                "seed": str(seed), "config_hash": f"{name}-{ablation}-{seed}",
                "code_version": code_version, "data_fingerprint": f"data{seed}",
            }  # fmt: skip
            run = store.client.create_run(
                store.experiment_id, run_name=f"deepfefm {ablation} seed={seed}", tags=tags
            ).info.run_id
            # runs on the embedded synthetic data (default teacher): the report checks its ranking
            store.client.log_param(run, "dataset.format", "synthetic")
            if failed == f"{ablation}-{seed}":
                store.client.set_terminated(run, "FAILED")
                continue
            auc = _auc(ablation, seed)
            for epoch in (1, 2):  # per-epoch validation metrics: the learning curves
                store.client.log_metric(run, "val_auc", auc - 0.01 / epoch, step=epoch)
                store.client.log_metric(
                    run, "val_logloss", 0.9 - auc / 2 + 0.01 / epoch, step=epoch
                )
            store.client.log_metric(run, "test_auc", auc)
            store.client.log_metric(run, "test_logloss", 0.9 - auc / 2)
            store.client.set_terminated(run, "FINISHED")
    return parent


class _Tables(HTMLParser):
    """Collects the text of each table's cells, by table id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._table = dict(attrs).get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_report_files_under_results_and_on_the_parent_run(store, tmp_path) -> None:
    parent = _sweep(store, "study1")
    written = write_report(store, tmp_path / "results", sweep="study1")
    names = {path.name for path in written.files}
    assert names == {MARKDOWN_NAME, CSV_NAME, RUNS_NAME, CHART_NAME, CURVES_NAME, HTML_NAME}
    assert written.parent_run_id == parent
    logged = {a.path for a in store.client.list_artifacts(parent, "report")}
    assert logged == {f"report/{name}" for name in names}

    table = pd.read_csv(tmp_path / "results" / CSV_NAME).set_index("ablation")
    assert table.loc["no_linear", "auc_paired_diff"] == pytest.approx(
        -0.04 + sum(WOBBLE.values()) / 3, abs=1e-12
    )
    assert table.loc["no_linear", "auc_verdict"] == "worse"
    assert table.loc["shallow", "auc_verdict"] == "not resolved"
    assert (tmp_path / "results" / CHART_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    markdown = (tmp_path / "results" / MARKDOWN_NAME).read_text()
    assert "| synthetic | deepfefm | shallow | 3 |" in markdown
    # 3 seeds at this spread show neither pairs-teacher expectation, and contradict neither
    assert "- The study contradicts nothing the teacher implies but does not show all" in markdown
    assert "Warning" not in markdown

    page = (tmp_path / "results" / HTML_NAME).read_text()
    parser = _Tables()
    parser.feed(page)
    rows = {row[2]: row for row in parser.tables["ablation-table"][1:]}
    header = parser.tables["ablation-table"][0]
    assert set(rows) == set(SHIFT)
    assert rows["no_linear"][header.index("test AUC verdict")] == "worse"
    needed = int(table.loc["shallow", "auc_seeds_needed"])
    assert rows["shallow"][header.index("test AUC verdict")] == f"not resolved (~{needed} seeds)"
    mean = sum(_auc("shallow", s) for s in BASE) / 3
    assert rows["shallow"][header.index("test AUC")].startswith(f"{mean:.5f} ± ")
    chart = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert chart is not None and len(chart.group(1)) > 1000


def test_report_warns_when_runs_differ_in_code_version(store, tmp_path) -> None:
    parent = _sweep(store, "mixed")
    newer = store.client.search_runs(
        [store.experiment_id], "tags.ablation = 'shallow' and tags.seed = '2'"
    )[0]
    store.client.set_tag(newer.info.run_id, "code_version", "v2")
    written = write_report(store, tmp_path / "results", sweep="mixed")
    assert written.warnings == [
        "dataset=synthetic model=deepfefm: the compared runs differ in code versions "
        "(tag code_version): v1 (11 runs), v2 (1 runs)"
    ]
    assert "**Warning: these runs are not all comparable.**" in written.markdown
    assert 'class="warning"' in (tmp_path / "results" / HTML_NAME).read_text()
    assert written.parent_run_id == parent


def test_finish_sweep_logs_the_report_and_links_the_comparison(store, tmp_path) -> None:
    parent = _sweep(store, "s1", failed="no_linear-3")
    summary = finish_sweep(store, parent, ui_port=5123, report=ReportSettings(budget_epochs=1))
    run = store.client.get_run(parent)
    assert run.info.status == "FAILED"  # one configuration failed; the report is still made
    assert run.data.tags["report"] == "logged"
    logged = {a.path for a in store.client.list_artifacts(parent, "report")}
    assert {f"report/{HTML_NAME}", f"report/{CHART_NAME}", f"report/{CURVES_NAME}"} <= logged
    assert "| synthetic | deepfefm | no_linear | 2 |" in summary.report
    assert "**At a fixed budget of 1 epochs**" in summary.report
    # no_linear's validation AUC after epoch 1: its test AUC - 0.01, paired with none's
    page = Path(store.client.download_artifacts(parent, f"report/{HTML_NAME}", str(tmp_path)))
    parser = _Tables()
    parser.feed(page.read_text())
    header, *rows = parser.tables["budget-table"]
    row = next(r for r in rows if r[2] == "no_linear")
    assert row[header.index("Δ budget val AUC [CI]")].startswith(
        f"{-0.04 + (0.0011 - 0.0007) / 2:+.5f} ["
    )
    assert page.read_text().count("data:image/png;base64,") == 2

    # first the report in the parent's artifact pane, then the runs side by side
    title, report_link = summary.links[0].splitlines()
    assert title.startswith("ablation report of sweep 's1' (every ablation's test AUC and log")
    assert report_link.strip() == (
        f"http://127.0.0.1:5123/#/experiments/{store.experiment_id}/runs/{parent}/artifacts/"
        "report/ablation_report.html?workflowType=machine_learning"
    )
    link = summary.links[1].splitlines()[1].strip()
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "127.0.0.1:5123", "/")
    route, _, query = parts.fragment.partition("?")
    assert route == "/compare-runs"
    params = parse_qs(query)
    assert params["workflowType"] == ["machine_learning"]
    assert json.loads(unquote(params["experiments"][0])) == [store.experiment_id]
    finished = {
        r.info.run_id
        for r in store.client.search_runs(
            [store.experiment_id], "tags.role = 'job' and attributes.status = 'FINISHED'"
        )
    }
    assert set(json.loads(params["runs"][0])) == finished and len(finished) == 11
    assert latest_sweep(store) == "s1"


def test_finish_sweep_without_finished_runs_notes_why(store) -> None:
    parent = store.client.create_run(
        store.experiment_id, tags={"role": "sweep", "sweep": "empty"}
    ).info.run_id
    summary = finish_sweep(store, parent)
    run = store.client.get_run(parent)
    assert run.info.status == "FINISHED"
    assert summary.report == ""
    assert summary.report_note.startswith("no ablation report: no finished runs")
    assert run.data.tags["report"] == summary.report_note
    assert summary.links[0] == "sweep 'empty' has no finished runs to compare yet"


def test_experiments_are_marked_model_training_with_a_description(store, tmp_path) -> None:
    tags = store.client.get_experiment(store.experiment_id).tags
    assert tags[KIND_TAG] == MODEL_TRAINING_KIND
    assert "fefm-lab ui sweep=NAME" in tags[DESCRIPTION_TAG]
    store.client.set_experiment_tag(store.experiment_id, DESCRIPTION_TAG, "my own words")
    again = open_store(store.tracking_uri, store.experiment_name)
    assert again.client.get_experiment(store.experiment_id).tags[DESCRIPTION_TAG] == "my own words"


def test_comparison_url_quotes_the_run_list() -> None:
    url = comparison_url("http://127.0.0.1:5000", "7", ["a1", "b2"])
    assert url == (
        "http://127.0.0.1:5000/#/compare-runs?runs=%5B%22a1%22%2C%22b2%22%5D"
        "&experiments=%5B%227%22%5D&workflowType=machine_learning"
    )


def test_report_of_an_unknown_sweep_is_a_user_error(store, tmp_path) -> None:
    _sweep(store, "s1")
    with pytest.raises(UserError, match="no finished runs with test metrics in sweep 'nope'"):
        write_report(store, tmp_path / "results", sweep="nope")
    assert not Path(tmp_path / "results" / MARKDOWN_NAME).exists()


def test_html_page_holds_the_tuned_settings_and_the_adaptive_account(store, tmp_path) -> None:
    from fefm_lab.report.adaptive_study import TAG_ADAPTIVE
    from fefm_lab.tracking.store import TAG_TUNED

    parent = _sweep(store, "tuned")
    chosen = {a: f"trainer.learning_rate={0.1 + i / 7!r}" for i, a in enumerate(SHIFT)}
    for run in store.client.search_runs([store.experiment_id], "tags.role = 'job'"):
        store.client.set_tag(run.info.run_id, TAG_TUNED, chosen[run.data.tags["ablation"]])
        store.client.log_metric(run.info.run_id, "cpu_seconds", 36.0)
    adaptive = {
        "first_seeds": 3, "seeds_per_look": 2, "max_seeds": 5, "looks": 2, "looks_taken": 1,
        "alpha": 0.05, "level": 0.05 / 12, "margins": {"auc": 0.001, "logloss": 0.001},
        "stopped": "max_cpu_hours (0.01) spent: 0.120 CPU-hours",
    }  # fmt: skip
    store.client.set_tag(parent, TAG_ADAPTIVE, json.dumps(adaptive))
    written = write_report(store, tmp_path / "results", sweep="tuned")
    page = (tmp_path / "results" / HTML_NAME).read_text()
    parser = _Tables()
    parser.feed(page)

    header, *rows = parser.tables["tuned-settings"]
    assert header == ["dataset", "model", "ablation", "settings chosen on validation"]
    assert [(r[2], r[3]) for r in rows] == list(chosen.items())  # the ablation table's order
    assert "<h2>Tuned settings</h2><p>Each ablation was tuned with the same trial budget" in page
    assert page.count('class="wrap"') == len(chosen)  # a long override may break in the pane
    markdown = written.markdown
    assert "**Tuned settings.** Each ablation was tuned with the same trial budget" in markdown
    for ablation, settings in chosen.items():
        assert f"| synthetic | deepfefm | {ablation} | {settings} |" in markdown

    # the adaptive sweep's account, as in the Markdown: seeds, CPU-hours, why it stopped
    header, *rows = parser.tables["adaptive-seeds"]
    assert header[:5] == ["dataset", "model", "ablation", "seeds", "CPU-hours"]
    assert {r[2]: (r[3], r[4]) for r in rows} == {a: ("3", "0.030") for a in SHIFT}
    assert "stopped: max_cpu_hours (0.01) spent: 0.120 CPU-hours)" in page
    assert "Cost: 12 runs, 0.120 CPU-hours." in page and "Cost: 12 runs, 0.120" in markdown
    assert '<div class="wide"><table id="adaptive-seeds">' in page
