"""A small sweep, `fefm-lab ui`, and headless Chromium on the printed link (slow).

Chromium comes from Debian's `chromium` package (`.ci/run` installs it when missing); its own
`--dump-dom` returns the page's DOM after the app has rendered (virtual time budget), so no
browser-automation dependency is needed. MLflow shows an HTML artifact in a sandboxed frame
loaded from `/get-artifact`; the test checks that the run's artifact page holds that viewer and
renders in Chromium the artifact as served at the address the viewer loads.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest
from mlflow.tracking import MlflowClient

from tests.local_ui import free_port, wait_for_ui
from tests.report.chromium_page import ChromiumPage

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FEFM_LAB = str(Path(sys.executable).with_name("fefm-lab"))
SWEEP = [
    "debug=tiny", "dataset.synthetic.rows=3000", "trainer.steps_per_epoch=null",
    "ablation=none,no_linear", "seed=1,2",
]  # fmt: skip


def format_metric(value: float) -> str:
    """MLflow UI's Utils.formatMetric for 0.001 <= |value| < 10: Math.round(1e3 * v) / 1e3."""
    return str(math.floor(value * 1000 + 0.5) / 1000)


def dump_dom(url: str, profile: Path, budget_ms: int = 30_000, until: str = "") -> str:
    """The DOM of `url` after `budget_ms` of virtual time, from a fresh Chromium profile. With
    `until`, up to three tries until the DOM holds that text: virtual time does not wait for
    every request of the MLflow app, so one dump in a while shows the page before its data."""
    for _ in range(3):
        dom = _dump_dom_once(url, profile, budget_ms)
        if until in dom:
            break
    return dom


def _dump_dom_once(url: str, profile: Path, budget_ms: int) -> str:
    if profile.exists():
        shutil.rmtree(profile)
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1600,1200",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def page_text(dom: str) -> str:
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"\s+", " ", html.unescape(text)).strip()


def metric_rows(text: str, run_ids: list[str]) -> dict[str, list[str]]:
    """The compare page's metric table: metric key -> its values, one per run column."""
    section = text.split("Metrics Show diff only", 1)[1].split(" Artifacts", 1)[0].split()
    keys = [token for token in section if not re.fullmatch(r"-?[0-9.e+-]+", token)]
    values = section[len(keys) :]
    assert len(values) == len(keys) * len(run_ids), section
    width = len(run_ids)
    return {key: values[i * width : (i + 1) * width] for i, key in enumerate(keys)}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 4-job sweep in a temp root, then `fefm-lab ui` on a free loopback port."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does it)")
    root = tmp_path_factory.mktemp("browser")
    port = free_port()
    common = [f"paths.root_dir={root}", f"mlflow.ui_port={port}", "mlflow.experiment=browser"]
    sweep = subprocess.run(
        [FEFM_LAB, "run", "-m", *SWEEP, *common, "sweep.name=browser_sweep"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=root,
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    ui = subprocess.Popen(
        [FEFM_LAB, "ui", *common],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=root,
        start_new_session=True,  # its own process group: the teardown ends all of it
    )
    try:
        wait_for_ui(ui, port)
        yield {"root": root, "port": port, "sweep_out": sweep.stdout, "ui": ui}
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()
        time.sleep(1)
        try:  # anything `fefm-lab ui` started would share its group: nothing may be left
            os.killpg(ui.pid, 0)
        except ProcessLookupError:
            pass
        else:
            os.killpg(ui.pid, signal.SIGKILL)
            pytest.fail("a process of `fefm-lab ui` outlived SIGTERM")


def _client(study) -> tuple[MlflowClient, str]:
    client = MlflowClient(f"sqlite:///{study['root']}/mlflow.db")
    return client, client.get_experiment_by_name("browser").experiment_id


def _printed_link(output: str) -> str:
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("compare sweep")]
    assert starts, output[-3000:]
    return lines[starts[-1] + 1].strip()


def test_first_printed_link_shows_every_ablation_at_a_glance(study, tmp_path) -> None:
    # the first address the sweep prints: its report in the parent run's artifact pane
    first = next(w for w in study["sweep_out"].split() if w.startswith("http://127.0.0.1:"))
    client, experiment_id = _client(study)
    (parent,) = client.search_runs([experiment_id], "tags.role = 'sweep'")
    assert first == (
        f"http://127.0.0.1:{study['port']}/#/experiments/{experiment_id}/runs/"
        f"{parent.info.run_id}/artifacts/report/ablation_report.html?workflowType=machine_learning"
    )
    children = client.search_runs([experiment_id], "tags.role = 'job'")
    means = {}
    for ablation in ("none", "no_linear"):
        runs = [r for r in children if r.data.tags["ablation"] == ablation]
        means[ablation] = [
            sum(r.data.metrics[m] for r in runs) / len(runs) for m in ("test_auc", "test_logloss")
        ]
    with ChromiumPage(CHROMIUM, tmp_path / "profile", 1400, 1400) as page:
        page.navigate(first)
        frame = "iframe.mlflow-html-iframe"
        rows = page.wait_for("#glance tbody tr", count=len(means), frame_of=frame)
        page.screenshot(tmp_path / "first_link_1400.png")
        (pane,) = page.boxes(frame)
        (wide,) = page.boxes("div.wide:has(> #ablation-table)", frame_of=frame)
        (body,) = page.boxes("body")
    # model-training layout: the sidebar offers the model registry, not GenAI's prompts
    layout = page_text(body["html"])
    assert "Model registry" in layout and "Prompts" not in layout and "AI Gateway" not in layout
    assert len(rows) == len(means)
    for row in rows:
        cells = [page_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row["html"])]
        auc, logloss = means[cells[0]]
        assert cells[2] == f"{auc:.5f}" and cells[4] == f"{logloss:.5f}", cells
        # on screen without scrolling: inside the window and inside the artifact pane's frame
        assert 0 <= pane["left"] <= row["left"] and row["right"] <= pane["right"] <= 1400, row
        assert 0 <= pane["top"] <= row["top"] and row["bottom"] <= pane["bottom"] <= 1400, row
    # the wide table scrolls in its own box instead of being cut at the pane's edge
    assert wide["right"] <= pane["right"]


def test_ui_is_lean_and_on_loopback(study) -> None:
    group = subprocess.run(
        ["ps", "-ww", "-o", "pid=,args=", "-g", str(study["ui"].pid)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    # `fefm-lab ui` serves MLflow's app itself: no launcher, no uvicorn worker, no job runner
    assert len(group) == 1 and "fefm-lab ui" in group[0], group
    children = subprocess.run(
        ["ps", "--ppid", str(study["ui"].pid), "-o", "pid=,args="],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    assert children == [], children
    with socket.socket() as probe:  # not reachable on another address of this machine
        assert probe.connect_ex(("127.0.0.1", study["port"])) == 0


def test_printed_link_shows_every_child_test_auc_in_the_model_training_layout(
    study, tmp_path
) -> None:
    link = _printed_link(study["sweep_out"])
    assert link.startswith(f"http://127.0.0.1:{study['port']}/#/compare-runs?")
    client, experiment_id = _client(study)
    children = client.search_runs(
        [experiment_id], "tags.role = 'job' and attributes.status = 'FINISHED'"
    )
    assert len(children) == 4
    params = parse_qs(urlsplit(link).fragment.partition("?")[2])
    run_ids = json.loads(unquote(params["runs"][0]))
    assert sorted(run_ids) == sorted(r.info.run_id for r in children)

    text = page_text(dump_dom(link, tmp_path / "profile", until="Run ID:"))
    # model-training layout: the sidebar offers the model registry, not GenAI's prompts/gateway
    assert "Model registry" in text and "AI Gateway" not in text and "Prompts" not in text
    assert f"Comparing {len(run_ids)} Runs" in text
    shown_ids = text.split("Run ID:", 1)[1].split()[: len(run_ids)]
    assert shown_ids == run_ids
    rows = metric_rows(text, shown_ids)
    by_id = {r.info.run_id: r for r in children}
    assert rows["test_auc"] == [format_metric(by_id[i].data.metrics["test_auc"]) for i in shown_ids]
    assert rows["test_logloss"] == [
        format_metric(by_id[i].data.metrics["test_logloss"]) for i in shown_ids
    ]

    # `fefm-lab ui` printed the same link for the latest sweep before serving
    ui_out = ""
    while link not in ui_out:  # its first lines were flushed before the server started
        line = study["ui"].stdout.readline()
        assert line, ui_out
        ui_out += line


def test_parent_run_html_report_holds_the_ablation_table(study, tmp_path) -> None:
    client, experiment_id = _client(study)
    (parent,) = client.search_runs([experiment_id], "tags.role = 'sweep'")
    parent_id = parent.info.run_id
    base = f"http://127.0.0.1:{study['port']}"
    viewer = dump_dom(
        f"{base}/#/experiments/{experiment_id}/runs/{parent_id}/artifacts/report/"
        "ablation_report.html?workflowType=machine_learning",
        tmp_path / "profile",
        until='class="mlflow-html-iframe"',
    )
    assert 'class="mlflow-html-iframe"' in viewer
    assert "report/ablation_report.html" in page_text(viewer)

    # the bytes the viewer's frame shows, as the server hands them out, rendered by Chromium
    path = quote("report/ablation_report.html")
    artifact = f"{base}/get-artifact?path={path}&run_uuid={parent_id}"
    with urllib.request.urlopen(artifact, timeout=60) as response:
        assert response.status == 200
        page = tmp_path / "ablation_report.html"
        page.write_bytes(response.read())
    report = dump_dom(page.as_uri(), tmp_path / "profile", budget_ms=5_000)
    table = re.search(r'<table id="ablation-table">(.*?)</table>', report, flags=re.S)
    assert table is not None, report[:2000]
    cells = [page_text(c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", table.group(1))]
    children = client.search_runs([experiment_id], "tags.role = 'job'")
    for ablation in ("none", "no_linear"):
        aucs = [r.data.metrics["test_auc"] for r in children if r.data.tags["ablation"] == ablation]
        assert ablation in cells
        assert any(c.startswith(f"{sum(aucs) / len(aucs):.5f} ± ") for c in cells), cells
    assert "data:image/png;base64," in report


def test_tuned_and_adaptive_sections_read_in_the_artifact_pane(study, tmp_path) -> None:
    """A tuned, adaptive study's report (the sweep's runs with tuned settings and an adaptive
    account added) in MLflow's artifact pane at 1400x1400: no table is cut off at the pane's
    edge, and the tuned settings fit it without scrolling."""
    from fefm_lab.report.ablation_table import runs_frame
    from fefm_lab.report.curves import load_curves
    from fefm_lab.report.write import build_report, log_report, write_files
    from fefm_lab.tracking.store import open_store

    store = open_store(f"sqlite:///{study['root']}/mlflow.db", "browser")
    runs = runs_frame(store.search("tags.role = 'job'"))
    rates = {"none": 0.1588965740019246, "no_linear": 0.36840636155584466}
    runs["tuned_settings"] = [
        f"trainer.learning_rate={rates[ablation]!r} model.l2_reg_embedding=3.1622776601683795e-05 "
        "model.dnn_dropout=0.2 model.embedding_dim=16"
        for ablation in runs["ablation"]
    ]
    adaptive = {
        "first_seeds": 2, "seeds_per_look": 2, "max_seeds": 6, "looks": 3, "looks_taken": 1,
        "alpha": 0.05, "level": 0.05 / 12, "margins": {"auc": 0.001, "logloss": 0.001},
        "stopped": "max_cpu_hours (0.01) spent: 0.012 CPU-hours",
    }  # fmt: skip
    report = build_report(runs, "tuned study", None, adaptive, load_curves(store.client, runs))
    assert report.tuned is not None and report.adaptive is not None
    _, files = write_files(report, tmp_path / "report")
    run_id = store.client.create_run(store.experiment_id, run_name="tuned report").info.run_id
    log_report(store, run_id, files)
    store.client.set_terminated(run_id, "FINISHED")
    page_url = (
        f"http://127.0.0.1:{study['port']}/#/experiments/{store.experiment_id}/runs/{run_id}/"
        "artifacts/report/ablation_report.html?workflowType=machine_learning"
    )
    frame = "iframe.mlflow-html-iframe"
    with ChromiumPage(CHROMIUM, tmp_path / "profile", 1400, 1400) as page:
        page.navigate(page_url)
        rows = page.wait_for("#tuned-settings tbody tr", count=len(rates), frame_of=frame)
        page.screenshot(tmp_path / "tuned_report_1400.png")
        (pane,) = page.boxes(frame)
        tables = page.boxes("table", frame_of=frame)
        boxes = page.boxes("div.wide", frame_of=frame)
        (tuned,) = page.boxes("#tuned-settings", frame_of=frame)
        (glance,) = page.boxes("#glance", frame_of=frame)
    assert len(rows) == len(rates)
    assert pane["right"] <= 1400
    ids = {re.search(r'id="([^"]+)"', t["html"]).group(1) for t in tables}
    assert {"glance", "ablation-table", "tuned-settings", "adaptive-seeds"} <= ids
    # every table either fits the pane or scrolls inside a box that does
    assert len(boxes) == len(tables) - 1  # all but the glance table sit in a scroll box
    for box in [*boxes, glance, tuned]:
        assert pane["left"] <= box["left"] and box["right"] <= pane["right"], box["html"][:200]
