"""`hydra/sweeper=adaptive_seeds`: the decisions on hand-built runs, and its plan before Hydra."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fefm_lab import cli
from fefm_lab.errors import ConfigError
from fefm_lab.sweep.adaptive_seeds import AdaptiveStudy, SeedSchedule, check_settings
from fefm_lab.sweep.plan import plan_sweep

ADAPTIVE = "hydra/sweeper=adaptive_seeds"


def test_the_schedule_plans_its_looks_and_the_last_step_is_cut_at_the_cap() -> None:
    schedule = SeedSchedule(first=3, max=8, step=2)
    assert schedule.looks == 4  # 3, 5, 7, 8
    assert [schedule.after(n) for n in (3, 5, 7, 8)] == [5, 7, 8, 8]
    assert SeedSchedule(3, 3, 2).looks == 1


def _runs(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for ablation, aucs in values.items():
        for seed, auc in enumerate(aucs, start=1):
            rows.append(
                {
                    "dataset": "synthetic",
                    "model": "deepfefm",
                    "ablation": ablation,
                    "seed": seed,
                    "auc": auc,
                    "logloss": 0.4 - auc / 2,  # log loss moves against AUC, same spread / 2
                }
            )
    return pd.DataFrame(rows)


def test_only_unsettled_ablations_and_their_baseline_get_more_seeds() -> None:
    points = [["ablation=none"], ["ablation=shallow"], ["ablation=no_linear"]]
    study = AdaptiveStudy(points, SeedSchedule(3, 7, 2), alpha=0.3, margins={"auc": 0.05,
                          "logloss": 0.05})  # fmt: skip
    assert study.pending() == [(i, s) for i in range(3) for s in (1, 2, 3)]
    study.mark_launched(study.pending())
    for i, name in enumerate(("none", "shallow", "no_linear")):
        study.record_key(i, ("synthetic", "deepfefm", name))
    base = [0.80, 0.85, 0.82, 0.79, 0.84, 0.81, 0.83]
    noise = [0.03, -0.04, 0.05, -0.02, 0.01, -0.03, 0.02]
    runs = _runs(
        {
            "none": base,
            # no_linear: the baseline +- 1e-3: equivalent within 0.05 at once
            "no_linear": [b + e / 30 for b, e in zip(base, noise, strict=True)],
            # shallow: noisy around the baseline: not resolved at 3 seeds
            "shallow": [b + 2 * e for b, e in zip(base, noise, strict=True)],
        }
    )
    assert study.look(runs[runs.seed <= 3]) is True
    assert study.level == pytest.approx(0.3 / (3 * 4))  # 3 planned looks x 2 ablations x 2 metrics
    assert study.states[2].verdicts == {"auc": "equivalent", "logloss": "equivalent"}
    assert study.states[2].settled_at == 3
    assert study.states[1].verdicts["auc"] == "not resolved"
    assert [s.target for s in study.states] == [5, 5, 3]
    assert study.pending() == [(0, 4), (0, 5), (1, 4), (1, 5)]
    study.mark_launched(study.pending())
    assert study.look(runs[runs.seed <= 5]) is True
    assert [s.target for s in study.states] == [7, 7, 3]
    study.mark_launched(study.pending())
    assert study.look(runs) is False  # the cap: 7 seeds, shallow still not resolved
    assert study.states[1].settled_at is None and study.pending() == []
    assert len(study.history) == 3
    # the settled ablation's verdicts stay: same seeds, same level
    assert set(study.history[-1].query("ablation == 'no_linear'")["verdict"]) == {"equivalent"}


def test_settings_are_checked_with_the_key_named() -> None:
    assert check_settings({"first_seeds": 2, "max_seeds": 4})["seeds_per_look"] == 2
    with pytest.raises(ConfigError, match=r"hydra.sweeper.max_seeds: expected an integer >= "):
        check_settings({"first_seeds": 5, "max_seeds": 4})
    with pytest.raises(
        ConfigError,
        match=r"hydra.sweeper.max_cpu_hours: expected null or a finite number > 0, got 0",
    ):
        check_settings({"max_cpu_hours": 0})
    with pytest.raises(ConfigError, match=r"hydra.sweeper.first_seed: unknown key"):
        check_settings({"first_seed": 3})


def test_the_plan_validates_the_grid_and_the_sweepers_settings(tmp_path: Path) -> None:
    root = f"paths.root_dir={tmp_path}"
    plan = plan_sweep([ADAPTIVE, "ablation=none,shallow", "hydra.sweeper.max_seeds=3", root])
    # every job the sweeper can reach: each grid point on seeds 1..max_seeds
    assert [(c["ablation"], c["seed"]) for c in plan.configs] == [
        ("none", 1), ("none", 2), ("none", 3), ("shallow", 1), ("shallow", 2), ("shallow", 3)
    ]  # fmt: skip
    assert plan.described.startswith("AdaptiveSeedsSweeper, 6 configurations")
    with pytest.raises(ConfigError, match=r"hydra.sweeper.seeds_per_look: expected an integer"):
        plan_sweep([ADAPTIVE, "ablation=none,shallow", "hydra.sweeper.seeds_per_look=0", root])


def test_a_swept_seed_or_a_bad_setting_stops_the_sweep_with_exit_2(tmp_path, capsys) -> None:
    root = f"paths.root_dir={tmp_path}"
    assert cli.main(["run", "-m", ADAPTIVE, "ablation=none,shallow", "seed=1,2", root]) == 2
    err = capsys.readouterr().err
    assert "error: seed=1,2: hydra/sweeper=adaptive_seeds picks the seeds itself" in err
    assert cli.main(["run", "-m", ADAPTIVE, "hydra.sweeper.max_seeds=1", root]) == 2
    err = capsys.readouterr().err
    assert "hydra.sweeper.max_seeds: expected an integer >= " in err
    assert "Traceback" not in err
    assert not (tmp_path / "mlflow.db").exists()


def test_the_report_section_counts_seeds_cpu_hours_and_the_fixed_seed_alternatives() -> None:
    from fefm_lab.report.adaptive_study import adaptive_markdown, adaptive_rows

    base = [0.80, 0.85, 0.82, 0.79, 0.84]
    noise = [0.03, -0.04, 0.05, -0.02, 0.01]
    runs = _runs(
        {
            "none": base,
            "no_linear": [b + e / 30 for b, e in zip(base[:3], noise, strict=False)],
            "shallow": [b + 2 * e for b, e in zip(base, noise, strict=True)],
        }
    )
    runs["cpu_seconds"] = 360.0  # 0.1 CPU-hours a run
    settings = {
        "first_seeds": 3, "seeds_per_look": 2, "max_seeds": 5, "looks": 2, "looks_taken": 2,
        "alpha": 0.3, "level": 0.3 / 8, "margins": {"auc": 0.05, "logloss": 0.05},
        "stopped": "max_seeds (5) reached with 1 ablation(s) not resolved",
    }  # fmt: skip
    rows = adaptive_rows(runs, settings).set_index("ablation")
    assert rows["seeds"].to_dict() == {"no_linear": 3, "none": 5, "shallow": 5}
    assert rows["CPU-hours"].to_dict() == pytest.approx({"no_linear": 0.3, "none": 0.5,
                                                         "shallow": 0.5})  # fmt: skip
    assert rows.loc["no_linear", "AUC verdict"] == "equivalent"
    assert rows.loc["shallow", "AUC verdict"] == "not resolved"
    assert rows.loc["no_linear", "seeds a verdict needs"] == ""
    assert int(rows.loc["shallow", "seeds a verdict needs"]) > 5
    text = adaptive_markdown(runs, settings)
    # 13 runs, 1.3 CPU-hours; the cap for all: 15 runs, 1.5; the least: 3 seeds each, 9 runs
    assert "Cost: 13 runs, 1.300 CPU-hours." in text
    assert "the cap, 5 seeds: 15 runs, about 1.500 CPU-hours (saved: 2 runs, 0.200" in text
    assert "3 seeds each, 9 runs, about 0.900 CPU-hours" in text


def test_a_spent_budget_stops_the_study_and_the_report_gives_the_seeds_a_verdict_needs() -> None:
    from fefm_lab.report.adaptive_study import adaptive_markdown, adaptive_rows
    from fefm_lab.report.verdicts import seeds_to_settle
    from fefm_lab.sweep.adaptive_seeds import budget_spent, unsettled_reason

    points = [["ablation=none"], ["ablation=shallow"], ["ablation=no_linear"]]
    margins = {"auc": 0.05, "logloss": 0.05}
    study = AdaptiveStudy(points, SeedSchedule(3, 7, 2), alpha=0.3, margins=margins)
    study.mark_launched(study.pending())
    for i, name in enumerate(("none", "shallow", "no_linear")):
        study.record_key(i, ("synthetic", "deepfefm", name))
    base = [0.80, 0.85, 0.82]
    noise = [0.03, -0.04, 0.05]
    runs = _runs(
        {
            "none": base,
            "no_linear": [b + e / 30 for b, e in zip(base, noise, strict=True)],
            "shallow": [b + 2 * e for b, e in zip(base, noise, strict=True)],
        }
    )
    runs["cpu_seconds"] = 240.0  # 9 runs: 0.6 CPU-hours
    assert study.look(runs) is True  # shallow is not resolved: it asks for seeds 4 and 5
    cpu_hours = float(runs["cpu_seconds"].sum()) / 3600
    # the CPU budget is spent at 0.6 of 0.5 CPU-hours; the wall budget counts this launch only
    settings = {"max_cpu_hours": 0.5, "max_wall_hours": 2.0}
    assert budget_spent(settings, cpu_hours, 0.1) == "max_cpu_hours (0.5) spent: 0.600 CPU-hours"
    assert budget_spent({**settings, "max_cpu_hours": 0.7}, cpu_hours, 0.1) == ""
    assert budget_spent({**settings, "max_cpu_hours": None}, cpu_hours, 2.0) == (
        "max_wall_hours (2) spent: 2.000 hours"
    )
    assert budget_spent({"max_cpu_hours": None, "max_wall_hours": None}, 1e9, 1e9) == ""
    assert unsettled_reason(study) == "max_seeds (7) reached with 1 ablation(s) not resolved"

    # the report of the stopped study: shallow unresolved at 3 seeds, with its seeds needed
    stopped = {
        "first_seeds": 3, "seeds_per_look": 2, "max_seeds": 7, "looks": 3, "looks_taken": 1,
        "alpha": 0.3, "level": study.level, "margins": margins,
        "stopped": budget_spent(settings, cpu_hours, 0.1),
    }  # fmt: skip
    rows = adaptive_rows(runs, stopped).set_index("ablation")
    assert rows.loc["shallow", "seeds"] == 3
    assert rows.loc["shallow", "AUC verdict"] == "not resolved"
    shallow = study.history[0].query("ablation == 'shallow'").set_index("metric")
    needed = max(
        seeds_to_settle(r["diff"], r["std"], 3, r["margin"], r["level"])
        for _, r in shallow.iterrows()
        if not r["settled"]
    )
    assert rows.loc["shallow", "seeds a verdict needs"] == str(int(needed))
    assert rows.loc["no_linear", "seeds a verdict needs"] == ""
    text = adaptive_markdown(runs, stopped)
    assert "(3 planned looks, 1 taken; stopped: max_cpu_hours (0.5) spent: 0.600 CPU-hours)" in (
        text
    )
    assert "Cost: 9 runs, 0.600 CPU-hours." in text
