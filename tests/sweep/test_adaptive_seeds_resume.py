"""An adaptive-seeds sweep killed mid-way and repeated ends as an uninterrupted one: the same
runs, the same verdicts, and more seeds on the ablation that stayed unresolved (subprocesses)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sweep.sweep_process import TINY_STUDY, WAIT_S, Sweep, adaptive_outcome

pytestmark = pytest.mark.slow

# On 3,000 tiny-trained rows `shallow` is worse in AUC by a steady 0.0025 and within 0.05 in log
# loss at once (settled at the first look, 2 seeds); `asymmetric` differs from `none` by a few
# 1e-4 AUC either way, which three seeds cannot place inside the 0.001 margin (not resolved at
# the cap, 3 seeds).
STUDY = ["hydra/sweeper=adaptive_seeds", "ablation=none,shallow,asymmetric", *TINY_STUDY]
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


@pytest.fixture
def sweeps() -> Iterator[list[Sweep]]:
    started: list[Sweep] = []
    yield started
    for sweep in started:  # nothing a test started outlives it
        sweep.stop()


def _wait_for_job_runs(sweep: Sweep, count: int) -> None:
    """Until the sweep has opened `count` job runs (the first batch has 6: 3 points x 2 seeds)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if len(sweep.store.search("tags.role = 'job'")) >= count:
            return
        if sweep.process.poll() is not None:
            pytest.fail(f"the sweep ended before {count} job runs:\n{sweep.output()}")
        time.sleep(0.2)
    pytest.fail(f"no {count} job runs after {WAIT_S} s:\n{sweep.output()}")


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_killed_and_repeated_it_ends_as_an_uninterrupted_sweep(
    tmp_path: Path, sweeps: list[Sweep], launcher: str
) -> None:
    arguments = STUDY + (JOBLIB if launcher == "joblib" else [])
    (tmp_path / "whole").mkdir()
    (tmp_path / "cut").mkdir()
    whole = Sweep(tmp_path / "whole", "adaptive", arguments)
    sweeps.append(whole)
    assert whole.wait() == 0, whole.output()
    assert "adaptive seeds: stopped: max_seeds (3) reached with 1 ablation(s) not resolved" in (
        whole.output()
    )

    cut = Sweep(tmp_path / "cut", "adaptive", arguments)
    sweeps.append(cut)
    _wait_for_job_runs(cut, 7)  # the second look's batch has started
    os.killpg(cut.process.pid, signal.SIGKILL)
    cut.wait()
    assert cut.wait_group_gone()
    again = Sweep(tmp_path / "cut", "adaptive", arguments)
    sweeps.append(again)
    assert again.wait() == 0, again.output()
    assert "marked KILLED: process" in again.output()  # the killed run was reaped, then rerun

    metrics, verdicts, settings = adaptive_outcome(whole.store)
    assert adaptive_outcome(again.store) == (metrics, verdicts, settings)
    assert sorted(metrics) == [
        ("asymmetric", 1), ("asymmetric", 2), ("asymmetric", 3),
        ("none", 1), ("none", 2), ("none", 3),
        ("shallow", 1), ("shallow", 2),
    ]  # fmt: skip
    assert verdicts["shallow"] == (2, "worse", "equivalent")  # settled at the first look
    assert verdicts["asymmetric"][0] == 3 and "not resolved" in verdicts["asymmetric"][1:]
    assert settings["looks"] == 2 and settings["looks_taken"] == 2
