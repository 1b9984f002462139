"""The report's account of an adaptive-seeds sweep: per ablation the seeds it took, the CPU-hours
its runs spent, its verdicts at the sweep's level, and for one still not resolved at the cap the
seeds a verdict would need; then what the adaptive mode cost against a fixed-seed study.

A fixed-seed study reaching the same verdicts runs every configuration on as many seeds as the
adaptive one gave its most demanding ablation; its CPU-hours are estimated from each
configuration's mean CPU time per run (the runs' `cpu_seconds`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from fefm_lab.report.ablation_table import report_metrics
from fefm_lab.report.document import Section
from fefm_lab.report.verdicts import BASELINE, study_verdicts

KEY = ["dataset", "model", "ablation"]
TAG_ADAPTIVE = "adaptive_seeds"  # on the sweep's parent run: the sweeper's settings, as JSON


def adaptive_rows(runs: pd.DataFrame, settings: Mapping[str, Any]) -> pd.DataFrame:
    """One row per configuration: seeds, CPU-hours, and (ablations) the verdicts at the sweep's
    level and, where one is not resolved, the seeds a verdict would need."""
    verdicts = study_verdicts(
        runs,
        margins=settings["margins"],
        alpha=float(settings["alpha"]),
        looks=int(settings["looks"]),
        metrics=report_metrics(runs),
    )
    by_key = {tuple(key): frame for key, frame in verdicts.groupby(KEY)}
    rows = []
    for key, frame in runs.groupby(KEY, sort=True):
        cpu = frame["cpu_seconds"].astype(np.float64) if "cpu_seconds" in frame else None
        row: dict[str, object] = {
            "dataset": key[0],
            "model": key[1],
            "ablation": key[2],
            "seeds": len(frame),
            "CPU-hours": math.nan if cpu is None else float(cpu.sum()) / 3600,
        }
        found = by_key.get(tuple(key))
        needed = ""
        if found is None:
            row["AUC verdict"] = row["log loss verdict"] = "baseline" if key[2] == BASELINE else ""
        else:
            verdict = dict(zip(found["metric"], found["verdict"], strict=True))
            row["AUC verdict"], row["log loss verdict"] = verdict["auc"], verdict["logloss"]
            open_rows = found[~found["settled"]]
            if not open_rows.empty:
                most = open_rows["seeds_needed"].max()
                needed = "out of reach" if math.isnan(most) else str(int(most))
        row["seeds a verdict needs"] = needed
        rows.append(row)
    return pd.DataFrame(rows)


def fixed_seed_cost(runs: pd.DataFrame, rows: pd.DataFrame, settings: Mapping[str, Any]) -> dict:
    """This study's runs and CPU-hours, and two fixed-seed studies': every configuration on
    max_seeds (the chance this study gave every ablation), and on the seeds its slowest settled
    ablation took (at least the first batch: the least a fixed study needs to reach the settled
    verdicts, known only afterwards). Their CPU-hours: each configuration's mean per run."""
    settled = rows[(rows["ablation"] != BASELINE) & (rows["seeds a verdict needs"] == "")]
    least = max([int(settings["first_seeds"]), *settled["seeds"].astype(int)])
    cap = int(settings["max_seeds"])
    cpu = runs["cpu_seconds"].astype(np.float64)
    per_run = float(runs.assign(cpu=cpu).groupby(KEY)["cpu"].mean().sum()) / 3600
    configurations = int(rows.shape[0])
    return {
        "runs": len(runs),
        "cpu_hours": float(cpu.sum()) / 3600,
        "cap_seeds": cap,
        "cap_runs": cap * configurations,
        "cap_cpu_hours": per_run * cap,
        "least_seeds": least,
        "least_runs": least * configurations,
        "least_cpu_hours": per_run * least,
    }


ADAPTIVE_TITLE = "Adaptive seeds"


def adaptive_section(runs: pd.DataFrame, settings: Mapping[str, Any]) -> Section | None:
    """The report's section on an adaptive-seeds sweep (None for an empty runs table)."""
    if runs.empty:
        return None
    rows = adaptive_rows(runs, settings)
    for column in ("CPU-hours",):
        rows[column] = [f"{v:.3f}" if not math.isnan(v) else "" for v in rows[column]]
    cost = fixed_seed_cost(runs, rows, settings)
    margins = ", ".join(f"{m} {v:g}" for m, v in settings["margins"].items())
    text = (
        f"Seeds 1..{settings['first_seeds']} for every configuration, then "
        f"{settings['seeds_per_look']} more per look for the ablations not yet resolved, up to "
        f"{settings['max_seeds']} ({settings['looks']} planned looks, "
        f"{settings['looks_taken']} taken; stopped: {settings['stopped']}). Every comparison at "
        f"every look has its interval at level 1 - {float(settings['level']):.2g} (alpha "
        f"{settings['alpha']:g} / (comparisons x planned looks), Bonferroni), so the chance of "
        f"any wrong verdict in the whole study is at most {settings['alpha']:g} (margins: "
        f"{margins}). Seeds a verdict needs: where an interval of the observed mean and spread "
        "at that level would settle (a projection: the mean moves as seeds come)."
    )
    after = (
        f"Cost: {cost['runs']} runs, {cost['cpu_hours']:.3f} CPU-hours. A fixed-seed study "
        f"giving every configuration the cap, {cost['cap_seeds']} seeds: {cost['cap_runs']} "
        f"runs, about {cost['cap_cpu_hours']:.3f} CPU-hours (saved: "
        f"{cost['cap_runs'] - cost['runs']} runs, "
        f"{cost['cap_cpu_hours'] - cost['cpu_hours']:.3f} CPU-hours). The least a fixed-seed "
        "study needs to reach the settled verdicts (known only afterwards; looking once, it "
        f"tests at a level K times looser): {cost['least_seeds']} seeds each, "
        f"{cost['least_runs']} runs, about {cost['least_cpu_hours']:.3f} CPU-hours."
    )
    return Section(ADAPTIVE_TITLE, text, rows, after, table_id="adaptive-seeds")


def adaptive_markdown(runs: pd.DataFrame, settings: Mapping[str, Any]) -> str:
    """The section as Markdown (empty for an empty runs table)."""
    section = adaptive_section(runs, settings)
    return section.markdown() if section is not None else ""
