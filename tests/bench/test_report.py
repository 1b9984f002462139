"""Benchmark helpers: targets, formatting, report files, timing and memory (no TensorFlow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from scripts.bench.machine import describe_machine, machine_markdown
from scripts.bench.measure import (
    best_seconds,
    interleaved_median_seconds,
    interval_stats,
    mean_seconds,
    median_seconds,
    peak_rss_bytes,
    time_calls,
)
from scripts.bench.report import (
    Section,
    Target,
    bench_table,
    format_number,
    write_report,
    write_summary,
)

ROOT = Path(__file__).resolve().parents[2]


def test_margin_past_a_negative_goal_is_a_difference():
    gap = Target("test AUC vs reference", 0.0017, -0.002)
    assert gap.met and gap.margin_text == "+0.0037 past goal"
    assert Target("gap", -0.003, -0.002).margin_text == "-0.001 past goal"
    assert Target("speed", 6.0, 5.0).margin_text == "1.20x of goal"


def test_target_higher_is_better_met_and_margin():
    target = Target("speed", measured=6.0, goal=5.0, unit="x")
    assert target.met
    assert target.margin == pytest.approx(1.2)
    assert target.as_row()[:5] == ["speed", "6.00x", ">= 5.00x", "met", "1.20x of goal"]


def test_target_lower_is_better_missed():
    target = Target("memory", measured=5.0, goal=4.0, higher_is_better=False, unit=" GiB")
    assert not target.met
    assert target.margin == pytest.approx(0.8)
    assert target.as_row()[2:4] == ["<= 4.00 GiB", "**missed**"]


def test_target_nan_is_missed_and_negative_goal_compares():
    assert not Target("x", math.nan, 1.0).met
    assert Target("auc gap", -0.001, -0.005).met
    assert not Target("auc gap", -0.006, -0.005).met


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1234567, "1,234,567"),
        (2500.4, "2,500"),
        (123.45, "123.5"),
        (1.234, "1.23"),
        (0.012345, "0.01235"),
        (0, "0"),
        (None, "n/a"),
        (math.nan, "n/a"),
    ],
)
def test_format_number(value, text):
    assert format_number(value) == text


def test_bench_table_escapes_pipes_and_formats_floats():
    table = bench_table(["a", "b"], [["x|y", 1234.0], ["z", 0.5]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1,234 |", "| z | 0.5 |"]


def test_interval_stats_skips_warmup():
    stats = interval_stats([10.0, 1.0, 2.0, 1.0], warmup=1)
    assert (stats.steps, stats.median_seconds, stats.mean_seconds) == (3, 1.0, 4 / 3)
    assert stats.per_second(1024) == 1024.0


class FakeClock:
    """perf_counter stand-in: each call advances by the next of `durations` after a start."""

    def __init__(self, durations):
        self.now, self.durations, self.calls = 0.0, list(durations), 0

    def __call__(self):
        return self.now

    def work(self):
        self.calls += 1
        self.now += self.durations.pop(0)


def test_time_calls_leaves_out_warmup_and_reduces_by_median_mean_best(monkeypatch):
    import scripts.bench.measure as measure

    durations = [9.0, 8.0, 1.0, 3.0, 2.0]  # two warm-up calls (slow: compilation), three timed
    for reduce, expected in ((median_seconds, 2.0), (mean_seconds, 2.0), (best_seconds, 1.0)):
        clock = FakeClock(durations)
        monkeypatch.setattr(measure.time, "perf_counter", clock)
        assert reduce(clock.work, repeats=3, warmup=2) == expected
        assert clock.calls == 5
    clock = FakeClock(durations)
    monkeypatch.setattr(measure.time, "perf_counter", clock)
    assert time_calls(clock.work, repeats=3, warmup=2) == [1.0, 3.0, 2.0]
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        time_calls(clock.work, repeats=0, warmup=0)


def test_interval_stats_rejects_too_few_steps():
    with pytest.raises(ValueError, match="warmup=2"):
        interval_stats([1.0, 2.0], warmup=2)


def test_machine_description_is_json_ready():
    machine = describe_machine()
    json.dumps(machine)
    assert machine["logical_cpus"] >= 1
    assert "CPU:" in machine_markdown(machine)
    assert peak_rss_bytes() > 10 * 2**20


def test_load_line_says_whether_other_work_slowed_the_figures():
    machine = {**describe_machine(), "usable_cpus": 2}
    busy = machine_markdown({**machine, "load_average_1m": 4.5})
    quiet = machine_markdown({**machine, "load_average_1m": 0.7})
    assert "4.5 on 2 cores (above the core count: other work shared" in busy
    assert "0.7 on 2 cores (at or below the core count)" in quiet


def test_write_report_and_summary_round_trip(tmp_path):
    machine = describe_machine()
    section = Section("Speed", text="hello", headers=["a"], rows=[[1.5]], data={"a": 1.5})
    targets = [Target("fast", 6.0, 5.0, unit="x"), Target("small", 5.0, 4.0, False)]
    md, js = write_report(
        tmp_path,
        "bench",
        title="T",
        intro="intro",
        machine=machine,
        sections=[section],
        targets=targets,
        settings={"smoke": False},
    )
    payload = json.loads(js.read_text())
    assert [t["met"] for t in payload["targets"]] == [True, False]
    assert payload["sections"] == {"Speed": {"a": 1.5}}
    text = md.read_text()
    assert "## Targets" in text and "| fast | 6.00x | >= 5.00x | met |" in text
    assert "## Speed" in text and "| 1.50 |" in text
    summary = write_summary(tmp_path).read_text()
    assert "1 of 2 targets met" in summary and "bench.md" in summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "bench.md", "summary.md"]


def test_summary_ignores_smoke_results(tmp_path):
    write_report(
        tmp_path,
        "bench",
        title="T",
        intro="",
        machine=describe_machine(),
        sections=[],
        targets=[Target("x", 1.0, 1.0)],
        settings={"smoke": True},
    )
    assert write_summary(tmp_path) is None


def test_probe_peak_memory_is_its_own_not_its_parents(tmp_path):
    """A probe started by a large parent reports its own peak (ru_maxrss would not)."""
    import subprocess
    import sys

    ballast = bytearray(400 * 2**20)  # the parent holds 400 MiB while the probe runs
    ballast[:: 2**12] = b"\x01" * len(ballast[:: 2**12])  # touch every page: resident
    assert peak_rss_bytes() >= 400 * 2**20  # so a peak inherited from the parent would show
    code = "from scripts.bench.measure import peak_rss_bytes; print(peak_rss_bytes())"
    child_peak = int(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout
    )
    assert child_peak < 200 * 2**20
    del ballast


def test_interleaved_medians_take_the_calls_in_turn(monkeypatch):
    import scripts.bench.measure as measure

    order = []

    class Clock:
        now = 0.0

        def __call__(self):
            return self.now

    clock = Clock()
    monkeypatch.setattr(measure.time, "perf_counter", clock)

    def call(name, seconds):
        def run():
            order.append(name)
            clock.now += seconds.pop(0)

        return run

    a = call("a", [5.0, 1.0, 2.0, 3.0])  # one warm-up, three timed: median 2
    b = call("b", [7.0, 10.0, 30.0, 20.0])  # median 20
    medians = interleaved_median_seconds({"a": a, "b": b}, repeats=3, warmup=1)
    assert medians == {"a": 2.0, "b": 20.0}
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b"]
    with pytest.raises(ValueError, match="repeats must be >= 1, received 0"):
        interleaved_median_seconds({"a": a}, repeats=0, warmup=0)


def test_summary_of_the_step_profile_alone_names_its_machine(tmp_path):
    """`python -m scripts.bench profile --out NEW` writes a summary with neither bench.json nor
    peer.json beside it: the machine comes from the profile's own report."""
    machine = describe_machine()
    write_report(
        tmp_path,
        "step_profile",
        title="T",
        intro="",
        machine=machine,
        sections=[],
        targets=[Target("bound share", 25.0, 66.67, unit="%")],
        settings={"smoke": False},
    )
    summary = write_summary(tmp_path).read_text()
    assert "0 of 1 targets met; details in `step_profile.md`" in summary
    assert machine_markdown(machine) in summary
