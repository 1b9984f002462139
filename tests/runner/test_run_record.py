"""What a run records in MLflow stays the same: the parameter keys and values, and the tags, of a
tiny run through `fefm-lab run` equal the record kept in `data/run_record.json`.

Left out, as they change from run to run or with the code: the process's identity and heartbeat,
the git commit, the code version and the config hash (which covers the code version), the run's
paths under the test's temporary root, and MLflow's own `mlflow.*` tags.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fefm_lab import cli
from fefm_lab.tracking.store import open_store

RECORD = Path(__file__).parent / "data" / "run_record.json"
CHANGING_TAGS = {
    "host", "pid", "pid_start", "heartbeat", "git_commit", "code_version", "config_hash",
    "fefm_path", "optimizer_path", "device", "kernels.isa",
}  # fmt: skip


def run_record(root: Path, *overrides: str) -> dict[str, dict[str, str]]:
    """Params and stable tags of one tiny run, with the temporary root written as `ROOT`."""
    arguments = ["debug=tiny", "dataset.synthetic.rows=3000", f"paths.root_dir={root}"]
    assert cli.main(["run", *arguments, "mlflow.experiment=record", *overrides]) == 0
    (run,) = open_store(f"sqlite:///{root}/mlflow.db", "record").search()
    return _record(run, root)


def _record(run, root: Path) -> dict[str, dict[str, str]]:
    tags = {
        key: value
        for key, value in run.data.tags.items()
        if key not in CHANGING_TAGS and not key.startswith("mlflow.")
    }
    params = {key: value.replace(str(root), "ROOT") for key, value in run.data.params.items()}
    return {"params": dict(sorted(params.items())), "tags": dict(sorted(tags.items()))}


def test_a_run_records_the_same_params_and_tags(tmp_path: Path) -> None:
    assert run_record(tmp_path, "model.use_linear=false") == json.loads(RECORD.read_text())


@pytest.mark.slow  # a one-job sweep through Hydra's launcher
def test_a_sweep_job_records_the_same_params_and_tags_and_its_sweep(tmp_path: Path) -> None:
    """The job's own composition, validated and typed in the job, records what a single run
    does, plus the sweep it belongs to."""
    arguments = ["debug=tiny", "dataset.synthetic.rows=3000", f"paths.root_dir={tmp_path}"]
    more = ["mlflow.experiment=record", "model.use_linear=false", "sweep.name=record"]
    assert cli.main(["run", "-m", *arguments, *more]) == 0
    store = open_store(f"sqlite:///{tmp_path}/mlflow.db", "record")
    (parent,) = store.search("tags.role = 'sweep'")
    (child,) = store.children(parent.info.run_id)
    record, expected = _record(child, tmp_path), json.loads(RECORD.read_text())
    sweep = {key: record["params"].pop(key) for key in list(record["params"]) if "sweep." in key}
    assert record["params"] == {k: v for k, v in expected["params"].items() if "sweep." not in k}
    assert record["tags"] == {**expected["tags"], "sweep": "record"}
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    fingerprints = sweep.pop("sweep.data_fingerprints")
    assert re.fullmatch(r'\["[0-9a-f]{16}"\]', fingerprints), fingerprints
    assert sweep == {
        "sweep.invocation": parent.data.tags["sweep_invocation"],
        "sweep.name": "record",
        "sweep.parent_run_id": parent.info.run_id,
        "sweep.unprepared": "[]",
    }
