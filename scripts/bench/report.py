"""Benchmark results: parts, targets with met / missed, Markdown and JSON written side by side."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fefm_lab.fileio import atomic_write_text
from fefm_lab.markdown import markdown_table
from scripts.bench.machine import machine_markdown


@dataclass(frozen=True)
class Target:
    """One goal: `measured` compared with `goal` (>= when `higher_is_better`, else <=)."""

    name: str
    measured: float
    goal: float
    higher_is_better: bool = True
    unit: str = ""
    note: str = ""

    @property
    def met(self) -> bool:
        if math.isnan(self.measured):
            return False
        if self.higher_is_better:
            return self.measured >= self.goal
        return self.measured <= self.goal

    @property
    def margin(self) -> float:
        """measured / goal for a higher-is-better goal, goal / measured otherwise (>= 1 is met)."""
        if self.higher_is_better:
            return self.measured / self.goal if self.goal else math.inf
        return self.goal / self.measured if self.measured else math.inf

    @property
    def margin_text(self) -> str:
        """The margin as a ratio; past a goal at or below zero (an AUC gap), as a difference."""
        if self.goal <= 0 or self.measured <= 0:
            past = self.measured - self.goal if self.higher_is_better else self.goal - self.measured
            return f"{past:+.4g} past goal"
        return f"{self.margin:.2f}x of goal"

    def as_row(self) -> list[str]:
        sign = ">=" if self.higher_is_better else "<="
        status = "met" if self.met else "**missed**"
        return [
            self.name,
            f"{format_number(self.measured)}{self.unit}",
            f"{sign} {format_number(self.goal)}{self.unit}",
            status,
            self.margin_text,
            self.note,
        ]


@dataclass
class Section:
    """A titled block of the report: a paragraph and an optional table."""

    title: str
    text: str = ""
    headers: Sequence[str] = ()
    rows: list[list[object]] = field(default_factory=list)
    data: dict = field(default_factory=dict)


@dataclass
class PartResult:
    """What one benchmark part measured: report sections, targets, and facts for the report."""

    sections: list[Section]
    targets: list[Target] = field(default_factory=list)
    intro: str = ""
    settings: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Part:
    """One benchmark, a subcommand of `python -m scripts.bench` (registered in its __main__).

    `add_arguments(parser)` declares its options (named after the part where another part could
    use the same word: they share one parser under `all`); `run(args)` measures. With
    `in_bench_report`, `all` (`make bench`) runs it into bench.md; run alone, it writes
    `<stem>.md` and `<stem>.json` (stem: its name unless given).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], PartResult]
    in_bench_report: bool = True
    stem: str | None = None
    title: str | None = None

    @property
    def report_stem(self) -> str:
        return self.stem or self.name


def int_list(text: str) -> list[int]:
    """An option's '10_000,1_000_000' -> [10000, 1000000]."""
    return [int(value.replace("_", "")) for value in text.split(",") if value]


def format_number(value: float | int | None) -> str:
    """Compact human formatting: thousands separators, 3-4 significant digits for small values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int) or (
        isinstance(value, float) and value.is_integer() and abs(value) >= 1000
    ):
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude == 0:
        return "0"
    return f"{value:.4g}"


def bench_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table whose floats go through `format_number`."""
    return markdown_table(rows, headers, float_format=format_number)


def render_markdown(
    title: str, machine: dict, sections: Sequence[Section], targets: Sequence[Target], intro: str
) -> str:
    """The whole report: title, how it was produced, machine, targets, then each section."""
    parts = [f"# {title}", "", intro, "", "## Machine", "", machine_markdown(machine), ""]
    if targets:
        parts += [
            "## Targets",
            "",
            bench_table(
                ["target", "measured", "goal", "status", "margin", "note"],
                [target.as_row() for target in targets],
            ),
            "",
        ]
    for section in sections:
        parts += [f"## {section.title}", ""]
        if section.text:
            parts += [section.text, ""]
        if section.headers:
            parts += [bench_table(section.headers, section.rows), ""]
    return "\n".join(parts)


def write_report(
    out_dir: Path,
    stem: str,
    *,
    title: str,
    intro: str,
    machine: dict,
    sections: Sequence[Section],
    targets: Sequence[Target],
    settings: dict,
) -> tuple[Path, Path]:
    """Write `<stem>.md` and `<stem>.json` under `out_dir`; return both paths."""
    markdown_path = out_dir / f"{stem}.md"
    json_path = out_dir / f"{stem}.json"
    payload = {
        "title": title,
        "machine": machine,
        "settings": settings,
        "targets": [{**asdict(target), "met": target.met} for target in targets],
        "sections": {section.title: section.data for section in sections},
    }
    atomic_write_text(json_path, json.dumps(payload, indent=2, default=float) + "\n")
    atomic_write_text(markdown_path, render_markdown(title, machine, sections, targets, intro))
    return markdown_path, json_path


SUMMARY_SOURCES = (
    ("peer", "Against the reference (DeepCTR 0.9.4)"),
    ("bench", "fefm-lab alone"),
    ("step_profile", "A training step against the machine's matmul bound"),
)


def write_summary(out_dir: Path) -> Path | None:
    """`summary.md`: every target of the SUMMARY_SOURCES reports found in `out_dir`, in tables.

    The README embeds this file; the per-benchmark details stay in peer.md and bench.md.
    """
    blocks, machines = [], {}
    for stem, heading in SUMMARY_SOURCES:
        path = out_dir / f"{stem}.json"
        if not path.is_file():
            continue
        payload = json.loads(path.read_text())
        if payload.get("settings", {}).get("smoke"):
            continue
        machines[stem] = payload["machine"]
        targets = [
            Target(
                **{key: value for key, value in entry.items() if key in Target.__dataclass_fields__}
            )
            for entry in payload["targets"]
        ]
        met = sum(target.met for target in targets)
        blocks += [
            f"**{heading}** ({met} of {len(targets)} targets met; details in `{stem}.md`)",
            "",
            bench_table(
                ["target", "measured", "goal", "status", "margin", "note"],
                [target.as_row() for target in targets],
            ),
            "",
        ]
    if not blocks:
        return None
    # bench.json's machine, else peer.json's, else the one report there is (a part run alone)
    machine = machines.get("bench") or machines.get("peer") or next(iter(machines.values()))
    text = "\n".join(
        [
            "Generated by `make bench-peer` and `make bench` (`python -m scripts.bench`); machine:",
            "",
            machine_markdown(machine),
            "",
            *blocks,
        ]
    )
    path = out_dir / "summary.md"
    atomic_write_text(path, text)
    return path
