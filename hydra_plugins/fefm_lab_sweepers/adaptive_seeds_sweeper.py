"""`hydra/sweeper=adaptive_seeds`: run every ablation and its baseline on a first batch of seeds,
then add seeds only to the ablations whose verdicts have not settled (fefm_lab.sweep.adaptive_seeds
has the rule and its error bound). Each batch goes through the configured launcher (basic,
joblib, Ray, Slurm), so every launcher works; the decisions are made here, in the launching
process, from the runs the jobs recorded in the tracking store.

    fefm-lab run -m ablation='glob(*)' hydra/sweeper=adaptive_seeds hydra.sweeper.max_seeds=12
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from fefm_lab.report.adaptive_study import TAG_ADAPTIVE
from fefm_lab.sweep.adaptive_seeds import (
    AdaptiveSeedsSweeperConf,
    AdaptiveStudy,
    SeedSchedule,
    budget_spent,
    check_settings,
    grid_points,
    sweep_values,
    unsettled_reason,
)
from fefm_lab.tracking.store import tag_value

ConfigStore.instance().store(
    group="hydra/sweeper", name="adaptive_seeds", node=AdaptiveSeedsSweeperConf, provider="fefm_lab"
)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class AdaptiveSeedsSweeper(Sweeper):
    """A Hydra Sweeper whose later batches depend on the verdicts of the earlier ones."""

    def __init__(self, params: dict[str, str] | None = None, **settings: Any) -> None:
        super().__init__()
        self.params = dict(params or {})
        self.settings = check_settings(settings)
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher = None

    @staticmethod
    def validation_values(override: Override) -> list[str]:
        """The values `fefm-lab run -m` validates before Hydra starts (fefm_lab.sweep.plan): every
        value of a listed sweep; `seed` and interval sweeps are refused (ConfigError)."""
        return sweep_values(override)

    @staticmethod
    def own_axes(sweeper: DictConfig) -> dict[str, list[str]]:
        """The keys this sweeper sets itself: `seed`, 1..max_seeds (fefm_lab.sweep.plan
        validates every job with them and prepares their data before Hydra starts)."""
        return {"seed": [str(seed) for seed in range(1, int(sweeper.max_seeds) + 1)]}

    @staticmethod
    def check_config(sweeper: DictConfig) -> None:
        """The sweeper's own keys' ranges, checked before any job starts (ConfigError)."""
        values = OmegaConf.to_container(sweeper, resolve=True)
        check_settings({k: v for k, v in values.items() if not k.startswith("_")})

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        from fefm_lab.sweep.callback import sweep_store
        from fefm_lab.sweep.parent import parent_of

        assert self.config is not None and self.launcher is not None
        assert self.hydra_context is not None
        # a null entry takes out a key that an included preset sweeps (as fefm_lab.sweep.plan)
        params = [f"{k}={v}" for k, v in self.params.items() if v is not None]
        lines = params + list(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        points = grid_points(parser.parse_overrides(lines))
        settings = self.settings
        schedule = SeedSchedule(
            settings["first_seeds"], settings["max_seeds"], settings["seeds_per_look"]
        )
        report = OmegaConf.to_container(self.config.report, resolve=True)
        margins, alpha = report["margin"], float(report["alpha"])
        study = AdaptiveStudy(points, schedule, alpha, margins)
        store = sweep_store(self.config)
        started = time.monotonic()
        run_of: dict[tuple[int, int], str] = {}
        returns: list[Sequence[JobReturn]] = []
        job_index, stopped = 0, "every ablation settled"
        while True:
            batch = study.pending()
            if not batch:
                break
            results = self.launcher.launch(
                [study.job(i, seed) for i, seed in batch], initial_job_idx=job_index
            )
            job_index += len(batch)
            study.mark_launched(batch)
            for (i, seed), result in zip(batch, results, strict=True):
                outcome = result.return_value  # raises what the job raised (SweepJobError)
                if getattr(outcome, "run_id", None):
                    run_of[(i, seed)] = outcome.run_id
            returns.append(results)
            runs, cpu_hours = _runs_of(store, run_of, study, report.get("budget_epochs"))
            raised = study.look(runs)
            _say(_look_line(study, len(study.history)))
            if not raised:
                stopped = unsettled_reason(study)
                break
            budget = budget_spent(settings, cpu_hours, (time.monotonic() - started) / 3600)
            if budget:
                stopped = budget
                break
        _say(f"adaptive seeds: stopped: {stopped}")
        parent = parent_of(store, str(self.config.sweep.invocation))
        if parent is not None:
            record = {
                **settings,
                "looks": schedule.looks,
                "level": study.level,
                "alpha": alpha,
                "margins": margins,
                "looks_taken": len(study.history),
                "stopped": stopped,
            }
            store.client.set_tag(parent.info.run_id, TAG_ADAPTIVE, tag_value(json.dumps(record)))
        return returns


def _runs_of(
    store, run_of: dict[tuple[int, int], str], study: AdaptiveStudy, budget_epochs: int | None
):
    """The finished runs of the launched jobs as the report reads them (`runs_frame` of
    report.ablation_table, with the metrics at `report.budget_epochs` when set), each point's key
    noted in the study, and the CPU-hours they recorded."""
    from fefm_lab.report.ablation_table import runs_frame
    from fefm_lab.report.curves import load_curves, with_budget

    runs = {run_id: store.client.get_run(run_id) for run_id in set(run_of.values())}
    frame = runs_frame(list(runs.values()))
    cpu_hours = sum(r.data.metrics.get("cpu_seconds", 0.0) for r in runs.values()) / 3600
    if frame.empty:
        return frame, cpu_hours
    if budget_epochs is not None:
        frame = with_budget(frame, load_curves(store.client, frame), budget_epochs)
    by_run = frame.set_index("run_id")
    for (i, _seed), run_id in sorted(run_of.items()):
        if run_id in by_run.index and study.states[i].key is None:
            row = by_run.loc[run_id]
            study.record_key(i, (str(row["dataset"]), str(row["model"]), str(row["ablation"])))
    return frame, cpu_hours


def _look_line(study: AdaptiveStudy, number: int) -> str:
    unsettled = [s for s in study.ablations() if s.settled_at is None]
    waiting = ", ".join(f"{s.key[1]} {s.key[2]} -> {s.target}" for s in unsettled) or "none"
    return (
        f"adaptive seeds: look {number} of at most {study.schedule.looks} (level "
        f"{study.level:.2g}): {len(study.ablations()) - len(unsettled)} ablation(s) settled; "
        f"not resolved (seeds next): {waiting}"
    )
