"""What a run records in MLflow stays the same: the parameter keys and values, and the tags, of a
tiny run through `fefm-lab run` equal the record kept in `data/run_record.json`.

Left out, as they change from run to run or with the code: the process's identity and heartbeat,
the git commit, the code version and the config hash (which covers the code version), the run's
paths under the test's temporary root, and MLflow's own `mlflow.*` tags.
"""

from __future__ import annotations

import json
from pathlib import Path

from fefm_lab import cli
from fefm_lab.tracking.store import open_store

RECORD = Path(__file__).parent / "data" / "run_record.json"
CHANGING_TAGS = {
    "host", "pid", "pid_start", "heartbeat", "git_commit", "code_version", "config_hash",
    "fefm_path", "optimizer_path", "device",
}  # fmt: skip


def run_record(root: Path, *overrides: str) -> dict[str, dict[str, str]]:
    """Params and stable tags of one tiny run, with the temporary root written as `ROOT`."""
    arguments = ["debug=tiny", "dataset.synthetic.rows=3000", f"paths.root_dir={root}"]
    assert cli.main(["run", *arguments, "mlflow.experiment=record", *overrides]) == 0
    (run,) = open_store(f"sqlite:///{root}/mlflow.db", "record").search()
    tags = {
        key: value
        for key, value in run.data.tags.items()
        if key not in CHANGING_TAGS and not key.startswith("mlflow.")
    }
    params = {key: value.replace(str(root), "ROOT") for key, value in run.data.params.items()}
    return {"params": dict(sorted(params.items())), "tags": dict(sorted(tags.items()))}


def test_a_run_records_the_same_params_and_tags(tmp_path: Path) -> None:
    assert run_record(tmp_path, "model.use_linear=false") == json.loads(RECORD.read_text())
