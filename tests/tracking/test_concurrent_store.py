"""Processes that create one fresh SQLite tracking store at one moment all get their runs in."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from fefm_lab.tracking.store import open_store

# Each worker imports MLflow, says it is ready, waits for the go file, then opens the (new) store
# and records one finished run with a metric: the migration race happens right after "go".
WORKER = """
import sys, time
from pathlib import Path
from fefm_lab.tracking.store import open_store

uri, folder, index = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
(folder / f"ready-{index}").touch()
while not (folder / "go").exists():
    time.sleep(0.005)
store = open_store(uri, "concurrent", str(folder / "artifacts"))
run = store.client.create_run(store.experiment_id, run_name=f"worker {index}")
store.client.log_metric(run.info.run_id, "index", float(index))
store.client.set_terminated(run.info.run_id, "FINISHED")
print("done", index)
"""

WORKERS = 3


@pytest.mark.slow
def test_three_processes_create_one_store_at_once(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), uri, str(tmp_path), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(WORKERS)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("ready-*"))) < WORKERS:
            assert time.monotonic() < deadline, "workers did not start"
            assert all(p.poll() is None for p in processes), [p.communicate() for p in processes]
            time.sleep(0.05)
        (tmp_path / "go").touch()
        results = [p.communicate(timeout=120) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
        assert out.startswith("done"), err

    store = open_store(uri, "concurrent")  # still usable after the race
    runs = store.search()
    assert sorted(r.info.run_name for r in runs) == [f"worker {i}" for i in range(WORKERS)]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.data.metrics["index"] for r in runs) == [0.0, 1.0, 2.0]
    later = store.client.create_run(store.experiment_id, run_name="after")
    assert store.client.get_run(later.info.run_id).info.run_name == "after"
    assert (tmp_path / "mlflow.db.lock").is_file()
