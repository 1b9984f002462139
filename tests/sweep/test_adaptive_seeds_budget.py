"""An adaptive-seeds sweep stopped by its budget: the unresolved ablation is reported with the
seeds a verdict needs, and a repeated sweep counts the CPU time its earlier launch spent
(subprocesses, real tiny runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fefm_lab.report.ablation_table import runs_frame, sweep_runs
from fefm_lab.report.adaptive_study import TAG_ADAPTIVE, adaptive_rows
from tests.sweep.sweep_process import TINY_STUDY, Sweep

pytestmark = pytest.mark.slow

# `asymmetric` is not resolved on two seeds of 3,000 tiny-trained rows (test_adaptive_seeds_resume
# has the measurements), so the first look asks for seed 3, and the budget decides.
STUDY = ["hydra/sweeper=adaptive_seeds", "ablation=none,asymmetric", *TINY_STUDY]
CPU_BUDGET = ["hydra.sweeper.max_cpu_hours=1e-6"]


def _launch(root: Path, arguments: list[str], sweeps: list[Sweep]) -> str:
    sweep = Sweep(root, "budget", arguments)
    sweeps.append(sweep)
    assert sweep.wait() == 0, sweep.output()
    return sweep.output()


def _stop_line(output: str) -> str:
    (line,) = [s for s in output.splitlines() if s.startswith("adaptive seeds: stopped:")]
    return line


def _job_runs(sweep_root: Path) -> list[tuple[str, int]]:
    from fefm_lab.tracking.store import open_store

    store = open_store(f"sqlite:///{sweep_root}/mlflow.db", "budget")
    runs = store.search("tags.role = 'job'")
    return sorted((r.data.tags["ablation"], int(r.data.tags["seed"])) for r in runs)


def test_a_budget_stop_reports_the_open_ablation_and_a_repeat_counts_what_was_spent(
    tmp_path: Path,
) -> None:
    sweeps: list[Sweep] = []
    try:
        first = _launch(tmp_path, STUDY + CPU_BUDGET, sweeps)
        stop = _stop_line(first)
        assert stop.startswith("adaptive seeds: stopped: max_cpu_hours (1e-06) spent: "), first
        four = [("asymmetric", 1), ("asymmetric", 2), ("none", 1), ("none", 2)]
        assert _job_runs(tmp_path) == four  # the look asked for seed 3; the budget said no

        store = sweeps[0].store
        (parent,) = store.search("tags.role = 'sweep'")
        settings = json.loads(parent.data.tags[TAG_ADAPTIVE])
        assert settings["stopped"] == stop.removeprefix("adaptive seeds: stopped: ")
        assert settings["looks_taken"] == 1
        rows = adaptive_rows(runs_frame(sweep_runs(store, parent)), settings)
        (open_row,) = rows[rows["ablation"] == "asymmetric"].to_dict("records")
        assert open_row["seeds"] == 2 and "not resolved" in (
            open_row["AUC verdict"],
            open_row["log loss verdict"],
        )
        needed = open_row["seeds a verdict needs"]
        assert needed == "out of reach" or int(needed) > 2, open_row
        # the report logged to the parent run says so
        report = Path(store.client.download_artifacts(parent.info.run_id, "report", tmp_path))
        markdown = (report / "ablation_table.md").read_text()
        assert f"stopped: {settings['stopped']})" in markdown
        assert "| synthetic | deepfefm | asymmetric | 2 |" in markdown
        assert f"| {needed} |" in markdown

        # repeated: every run is reused, their CPU time counts, and the budget stops it again
        again = _launch(tmp_path, STUDY + CPU_BUDGET, sweeps)
        assert _stop_line(again) == stop, again
        assert _job_runs(tmp_path) == four
        # a wall-time budget counts this launch only: spent at once, after the reused first look
        wall = _launch(tmp_path, [*STUDY, "hydra.sweeper.max_wall_hours=1e-9"], sweeps)
        assert "adaptive seeds: stopped: max_wall_hours (1e-09) spent: " in wall, wall
        assert _job_runs(tmp_path) == four
        # without a budget the same study goes on to the cap: the budget was what stopped it
        free = _launch(tmp_path, STUDY, sweeps)
        assert "adaptive seeds: stopped: max_seeds (3) reached" in free or (
            "adaptive seeds: stopped: every ablation settled" in free
        ), free
        assert _job_runs(tmp_path) == sorted([*four, ("asymmetric", 3), ("none", 3)])
    finally:
        for sweep in sweeps:
            sweep.stop()
