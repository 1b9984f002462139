"""`fefm-lab ui` as a real process: one process, the printed link's runs served, clean stop (slow).

The UI serves MLflow's app in its own process: while it serves, `ps --ppid` lists nothing under
it; the REST calls the printed comparison page makes return the sweep's runs with their test
metrics (and refuse a foreign Host header, as under `mlflow ui`); SIGINT (Ctrl-C) or SIGTERM
ends it with exit status 0 and the port free again.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from fefm_lab.tracking.store import open_store
from tests.local_ui import free_port, wait_for_ui

pytestmark = pytest.mark.slow

FEFM_LAB = str(Path(sys.executable).with_name("fefm-lab"))
AUC = {1: 0.7812, 2: 0.7745}


def _sweep(root: Path) -> dict[str, float]:
    """A sweep's parent run and two FINISHED children with test metrics (no training)."""
    store = open_store(f"sqlite:///{root}/mlflow.db", "fefm-lab", str(root / "mlartifacts"))
    parent = store.client.create_run(
        store.experiment_id, run_name="sweep s1", tags={"role": "sweep", "sweep": "s1"}
    ).info.run_id
    aucs = {}
    for seed, auc in AUC.items():
        tags = {
            "role": "job", "sweep": "s1", "mlflow.parentRunId": parent, "dataset": "synthetic",
            "model": "deepfefm", "ablation": "none", "seed": str(seed), "config_hash": f"h{seed}",
        }  # fmt: skip
        run = store.client.create_run(store.experiment_id, tags=tags).info.run_id
        store.client.log_metric(run, "test_auc", auc)
        store.client.log_metric(run, "test_logloss", 0.45)
        store.client.set_terminated(run, "FINISHED")
        aucs[run] = auc
    store.client.set_terminated(parent, "FINISHED")
    return aucs


def _children(pid: int) -> list[str]:
    result = subprocess.run(
        ["ps", "--ppid", str(pid), "-o", "pid=,args="], capture_output=True, text=True, check=False
    )
    return result.stdout.splitlines()


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read())


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ui_is_one_process_serves_the_link_and_stops_cleanly(tmp_path, stop) -> None:
    aucs = _sweep(tmp_path)
    port = free_port()
    ui = subprocess.Popen(
        [FEFM_LAB, "ui", f"paths.root_dir={tmp_path}", f"mlflow.ui_port={port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        wait_for_ui(ui, port)
        assert _children(ui.pid) == []  # no launcher, no uvicorn worker, no job runner

        # the printed comparison link: its runs are the sweep's, served with their test AUC
        printed = ""
        while "compare sweep 's1'" not in printed:
            line = ui.stdout.readline()
            assert line, printed
            printed += line
        link = ui.stdout.readline().strip()
        base = f"http://127.0.0.1:{port}"
        assert link.startswith(f"{base}/#/compare-runs?")
        with urllib.request.urlopen(link, timeout=30) as page:  # the app (fragment: client-side)
            assert page.status == 200 and b'<div id="root"' in page.read()
        query = parse_qs(urlsplit(link).fragment.partition("?")[2])
        run_ids = json.loads(unquote(query["runs"][0]))
        assert sorted(run_ids) == sorted(aucs)
        for run_id in run_ids:
            run = _get_json(f"{base}/ajax-api/2.0/mlflow/runs/get?run_id={run_id}")["run"]
            metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
            assert metrics["test_auc"] == aucs[run_id]
        # MLflow's DNS-rebinding guard is on, as under `mlflow ui`: a foreign Host is refused
        foreign = urllib.request.Request(
            f"{base}/ajax-api/2.0/mlflow/runs/get?run_id={run_ids[0]}",
            headers={"Host": "attacker.example"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(foreign, timeout=30)
        assert refused.value.code == 403
    finally:
        ui.send_signal(stop)
        try:
            output = ui.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            ui.kill()
            ui.communicate()
            raise
    assert ui.returncode == 0, output[-3000:]
    assert output.rstrip().endswith(f"MLflow UI stopped ({stop.name})"), output[-3000:]
    assert "Traceback" not in output
    with socket.socket() as again:  # the port is free again
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
