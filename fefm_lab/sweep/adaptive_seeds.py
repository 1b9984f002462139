"""Seeds added until the verdicts settle: what `hydra/sweeper=adaptive_seeds` decides.

The sweep's grid (every swept key but `seed`) is a set of points; a point's runs are seeds
1..n. Every point starts with `first_seeds`. At each look, every ablation (a point whose
`ablation` is not `none`) that is not yet settled is compared with its baseline (`none` of the
same dataset and model) over their common seeds, per metric (test AUC and log loss): better,
worse, equivalent within the practical margin, or not resolved. An ablation with a metric not
resolved gets `seeds_per_look` more seeds (its baseline too, as far as the pairs need), until
`max_seeds`; a settled one gets no more, and keeps the verdicts of the look that settled it.

The verdicts are fefm_lab.report.verdicts.study_verdicts' with looks = the planned number of looks
K = 1 + ceil((max_seeds - first_seeds) / seeds_per_look): every comparison at every look gets a
simultaneous interval at level 1 - alpha / (comparisons x K) (Bonferroni over tests and looks), so
the chance of any wrong verdict over the whole study is at most alpha (`report.alpha`), however
many looks it actually takes and whichever ablations get more seeds. A settled ablation gets no
more seeds and its interval's level does not change, so its verdict stays.

Killed and repeated, the sweep makes the same decisions: they depend only on the runs' test
metrics, and finished runs are reused by config hash. A budget can stop it earlier, checked after
each look that asks for more seeds (the batch running when it is spent finishes):
`max_cpu_hours` counts the `cpu_seconds` of every run the sweep's jobs ended with, reused runs
included, so a repeated sweep counts what its earlier launches spent; `max_wall_hours` counts
this launch's time only (a wall-time budget is per launch, and makes the path depend on it).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fefm_lab.config.rules import check_section
from fefm_lab.config.schema import AdaptiveSeedsConfig
from fefm_lab.errors import ConfigError
from fefm_lab.report.ablation_table import report_metrics
from fefm_lab.report.verdicts import BASELINE, study_verdicts

Key = tuple[str, str, str]  # dataset, model, ablation
SWEEPER = "hydra_plugins.fefm_lab_sweepers.adaptive_seeds_sweeper.AdaptiveSeedsSweeper"


@dataclass
class AdaptiveSeedsSweeperConf(AdaptiveSeedsConfig):
    """The sweeper's node (`hydra/sweeper=adaptive_seeds`): the documented keys, its class and
    the grid (`params`: key -> sweep, as Hydra's basic sweeper takes it; `seed` is its own)."""

    _target_: str = SWEEPER
    params: dict[str, str] | None = None


@dataclass(frozen=True)
class SeedSchedule:
    """Looks at first, first + step, ..., max seeds (the last step may be shorter)."""

    first: int
    max: int
    step: int

    @property
    def looks(self) -> int:
        return 1 + math.ceil((self.max - self.first) / self.step)

    def after(self, n: int) -> int:
        """The seed count of the look after the one at n seeds."""
        return min(self.max, n + self.step)


def check_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """The sweeper's keys checked against AdaptiveSeedsConfig (ConfigError naming the key),
    with the defaults for those not given."""
    settings = {f.name: f.default for f in dataclasses.fields(AdaptiveSeedsConfig)}
    given = {k: v for k, v in values.items() if k != "params"}
    check_section(given, AdaptiveSeedsConfig, "hydra.sweeper.")
    settings.update(given)
    if settings["max_seeds"] < settings["first_seeds"]:
        raise ConfigError(
            f"hydra.sweeper.max_seeds: expected an integer >= hydra.sweeper.first_seeds "
            f"({settings['first_seeds']}), got {settings['max_seeds']}"
        )
    return settings


def sweep_values(override: Any) -> list[str]:
    """The values of one parsed Hydra override in the grid (a fixed one: its value); `seed` is
    the sweeper's own, and only choice, range and glob sweeps list values (ConfigError)."""
    if override.get_key_element() == "seed":
        raise ConfigError(
            f"{override.input_line}: hydra/sweeper=adaptive_seeds picks the seeds itself "
            "(seeds 1..hydra.sweeper.max_seeds): leave seed out"
        )
    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    if not override.is_discrete_sweep():
        raise ConfigError(
            f"{override.input_line}: hydra/sweeper=adaptive_seeds sweeps choice, range and glob "
            "values only"
        )
    return list(override.sweep_string_iterator())


def grid_points(overrides: Sequence[Any]) -> list[list[str]]:
    """The sweep's grid: the cartesian product of its sweeps, each point with the fixed
    overrides (as Hydra's basic sweeper lists them); `seed` is left to the sweeper.

    `overrides` are Hydra's parsed `Override`s, the sweeper's params first (a later key wins).
    """
    choices: dict[str, list[str]] = {}
    for override in overrides:
        key = override.get_key_element()
        choices[key] = [f"{key}={value}" for value in sweep_values(override)]
    return [list(point) for point in itertools.product(*choices.values())]


@dataclass
class PointState:
    """One grid point: the seeds it should have, its key once a run says it, its verdicts."""

    target: int
    key: Key | None = None
    settled_at: int | None = None  # seeds of the look that settled it
    verdicts: dict[str, str] = field(default_factory=dict)


@dataclass
class AdaptiveStudy:
    """The state of an adaptive-seeds sweep between looks (the sweeper's bookkeeping).

    `points` are the grid points (job overrides without `seed`); `record_key` notes which
    configuration (dataset, model, ablation) a point's runs are; `look` takes the runs table
    (report.ablation_table.runs_frame columns) and raises the targets of the ablations not settled
    (and of their baseline); `pending` lists the (point, seed) jobs still to launch.
    """

    points: list[list[str]]
    schedule: SeedSchedule
    alpha: float
    margins: Mapping[str, float]
    states: list[PointState] = field(default_factory=list)
    launched: set[tuple[int, int]] = field(default_factory=set)
    history: list[pd.DataFrame] = field(default_factory=list)  # study_verdicts per look
    level: float = math.nan  # the level of every comparison (from the last look)

    def __post_init__(self) -> None:
        if not self.states:
            self.states = [PointState(self.schedule.first) for _ in self.points]

    def pending(self) -> list[tuple[int, int]]:
        """(point index, seed) pairs within the targets that were not launched yet."""
        return [
            (i, seed)
            for i, state in enumerate(self.states)
            for seed in range(1, state.target + 1)
            if (i, seed) not in self.launched
        ]

    def job(self, index: int, seed: int) -> list[str]:
        return [*self.points[index], f"seed={seed}"]

    def mark_launched(self, jobs: Sequence[tuple[int, int]]) -> None:
        self.launched.update(jobs)

    def record_key(self, index: int, key: Key) -> None:
        self.states[index].key = key

    def ablations(self) -> list[PointState]:
        return [s for s in self.states if s.key is not None and s.key[2] != BASELINE]

    def look(self, runs: pd.DataFrame) -> bool:
        """Verdicts of every ablation at its seeds; True when targets were raised."""
        verdicts = study_verdicts(
            runs,
            margins=self.margins,
            alpha=self.alpha,
            looks=self.schedule.looks,
            metrics=report_metrics(runs),  # the report's: test, and at the budget when known
        )
        self.history.append(verdicts)
        if not verdicts.empty:
            self.level = float(verdicts["level"].iloc[0])
        by_key = {key: frame for key, frame in verdicts.groupby(["dataset", "model", "ablation"])}
        raised = False
        for state in self.ablations():
            if state.settled_at is not None:
                continue
            rows = by_key.get(state.key)
            if rows is None:  # no baseline for it in the grid: nothing to compare
                state.settled_at = state.target
                continue
            state.verdicts = dict(zip(rows["metric"], rows["verdict"], strict=True))
            if bool(rows["settled"].all()):
                state.settled_at = state.target
            elif state.target < self.schedule.max:
                state.target = self.schedule.after(state.target)
                raised = True
        # a baseline runs every seed its ablations pair with (same dataset; the report pairs
        # an ablation with `none` of its model, else of deepfefm)
        for state in self.states:
            if state.key is None or state.key[2] != BASELINE:
                continue
            paired = [s.target for s in self.ablations() if s.key[0] == state.key[0]]
            if paired and max(paired) > state.target:
                state.target = max(paired)
                raised = True
        return raised


def budget_spent(settings: Mapping[str, Any], cpu_hours: float, wall_hours: float) -> str:
    """Why the budget stops the study (empty while it lasts): `max_cpu_hours` against the
    CPU-hours the sweep's runs recorded, `max_wall_hours` against this launch's hours."""
    cpu_cap, wall_cap = settings.get("max_cpu_hours"), settings.get("max_wall_hours")
    if cpu_cap is not None and cpu_hours >= cpu_cap:
        return f"max_cpu_hours ({cpu_cap:g}) spent: {cpu_hours:.3f} CPU-hours"
    if wall_cap is not None and wall_hours >= wall_cap:
        return f"max_wall_hours ({wall_cap:g}) spent: {wall_hours:.3f} hours"
    return ""


def unsettled_reason(study: AdaptiveStudy) -> str:
    """Why a study that asks for no more seeds stopped: all settled, or the cap."""
    left = [s for s in study.ablations() if s.settled_at is None]
    if not left:
        return "every ablation settled"
    return f"max_seeds ({study.schedule.max}) reached with {len(left)} ablation(s) not resolved"
