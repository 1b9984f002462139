"""From tracked runs to the ablation table.

For each (dataset, model, ablation): test AUC and log loss as mean +- sample std (ddof 1) over
seeds, the difference of means to the baseline (the same model without ablation), and a paired
comparison over the seeds both have (report.statistics): mean and std of d_s = x_s - baseline_s,
its 95% confidence interval, the paired t test's two-sided p-value and the smallest difference
these seeds resolve (power 0.8), each as for one test at 0.05 (columns ci_*, t, p, mdd). The
verdicts (better / worse / equivalent / not resolved) come from
`fefm_lab.report.verdicts.study_verdicts` over every comparison and metric of the table at once
(simultaneous intervals, Bonferroni over the tests and the planned looks): columns
`{metric}_verdict`, `{metric}_margin`, `{metric}_vci_low` / `_vci_high` (the interval the verdict
reads), `{metric}_level` and `{metric}_seeds_needed`. With `report.budget_epochs` the runs also
carry `budget_auc` / `budget_logloss` (validation metrics after that many epochs), compared the
same way in the same family.
Pairing removes the seed's shared effect (same split, same initialisation stream), which is what
makes differences of 1e-4 AUC readable at all.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from mlflow.entities import Run

from fefm_lab.config.ablation import ABLATION_NAMES
from fefm_lab.errors import UserError
from fefm_lab.report.paper import PAPER_DATASETS, paper_gap, paper_numbers
from fefm_lab.report.settings import ReportSettings
from fefm_lab.report.statistics import (
    ALPHA,
    POWER,
    PairedComparison,
    minimum_detectable_difference,
    paired_comparison,
    seeds_needed,
)
from fefm_lab.report.verdicts import study_verdicts
from fefm_lab.tracking.store import (
    ROLE_JOB,
    TAG_CODE_VERSION,
    TAG_DATA_FINGERPRINT,
    TAG_OUTCOME,
    TAG_ROLE,
    TAG_SWEEP,
    TAG_TRIAL,
    TAG_TUNED,
    TrackingStore,
    latest_per_config,
    reused_runs,
)
from fefm_lab.uris import masked_uri

METRICS = ("auc", "logloss")
BUDGET_METRICS = ("budget_auc", "budget_logloss")
BASELINE = "none"
KEY = ["dataset", "model", "ablation"]


def sweep_runs(store: TrackingStore, parent: Run) -> list[Run]:
    """A sweep's runs: its children and the FINISHED runs its jobs reused instead of rerunning."""
    return store.children(parent.info.run_id) + reused_runs(store, parent)


def load_runs(store: TrackingStore, sweep: str | None = None) -> pd.DataFrame:
    """One row per configuration of one sweep (its children and the runs it reused) or of the
    whole experiment whose latest run (`latest_per_config`) FINISHED with test metrics; then the
    newest per seed (`latest_per_seed`)."""
    if sweep:
        parent = store.sweep_parent(sweep)
        runs = sweep_runs(store, parent) if parent is not None else []
    else:
        runs = store.search(f"tags.{TAG_ROLE} = '{ROLE_JOB}'")
    rows = runs_frame(runs)
    if rows.empty:
        where = f"sweep {sweep!r} of " if sweep else ""
        raise UserError(
            f"no finished runs with test metrics in {where}experiment {store.experiment_name!r} "
            f"({masked_uri(store.tracking_uri)}); run `fefm-lab run -m ...` first or check "
            "mlflow.experiment"
        )
    return rows


def runs_frame(runs: list[Run]) -> pd.DataFrame:
    """The FINISHED job runs with test metrics as rows (latest of each config hash, then of each
    seed); empty when there are none."""
    rows = {}
    for run in latest_per_config(runs):
        tags, metrics = run.data.tags, run.data.metrics
        if (
            run.info.status != "FINISHED"
            or tags.get(TAG_ROLE) != ROLE_JOB
            or tags.get(TAG_OUTCOME) == "skipped"
            # a tuning trial is not an ablation run, unless it is its study's chosen settings
            or (TAG_TRIAL in tags and TAG_TUNED not in tags)
            or not {"test_auc", "test_logloss"} <= set(metrics)
        ):
            continue
        rows[run.info.run_id] = {
            "run_id": run.info.run_id,
            "dataset": tags.get("dataset", "unknown"),
            "model": tags.get("model", "unknown"),
            "ablation": tags.get("ablation", BASELINE),
            "seed": int(tags.get("seed", -1)),
            "sweep": tags.get(TAG_SWEEP, ""),
            "parent_run_id": tags.get("mlflow.parentRunId", ""),
            "auc": metrics["test_auc"],
            "logloss": metrics["test_logloss"],
            "stopped_early": metrics.get("stopped_early", math.nan),
            "cpu_seconds": metrics.get("cpu_seconds", math.nan),
            "code_version": tags.get(TAG_CODE_VERSION, ""),
            "data_fingerprint": tags.get(TAG_DATA_FINGERPRINT, ""),
            "params": dict(run.data.params),
            "tuned_settings": tags.get(TAG_TUNED, ""),
            "start_time": run.info.start_time,
        }
    if not rows:
        return pd.DataFrame()
    return latest_per_seed(pd.DataFrame(list(rows.values())))


def latest_per_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """Keep the newest run of each (dataset, model, ablation, seed).

    A sweep repeated after a setting changed (say the learning rate) reruns every configuration
    under the same names; its runs replace the older ones instead of doubling the seed count and
    mixing two settings in one mean. To compare settings, give each its own sweep or experiment.
    """
    keys = ["dataset", "model", "ablation", "seed"]
    newest = runs.sort_values("start_time", kind="stable").drop_duplicates(keys, keep="last")
    return newest.sort_index().reset_index(drop=True)


def paired(values: pd.Series, baseline: pd.Series) -> PairedComparison:
    """Paired comparison over the seeds both series have (indexed by seed; NaN: not had)."""
    values, baseline = values.dropna(), baseline.dropna()
    common = values.index.intersection(baseline.index).sort_values()
    return paired_comparison(values.loc[common].to_numpy(), baseline.loc[common].to_numpy())


def _baseline_of(groups: dict, dataset: str, model: str) -> pd.DataFrame | None:
    return groups.get((dataset, model, BASELINE), groups.get((dataset, "deepfefm", BASELINE)))


def _comparison_columns(metric: str, comparison: PairedComparison | None) -> dict[str, object]:
    """The paired comparison as table columns (NaN, n = 0 for a baseline or a missing one)."""
    if comparison is None:
        comparison = paired_comparison([], [])
    return {
        f"{metric}_paired_n": comparison.n,
        f"{metric}_paired_diff": comparison.mean,
        f"{metric}_paired_std": comparison.std,
        f"{metric}_ci_low": comparison.ci_low,
        f"{metric}_ci_high": comparison.ci_high,
        f"{metric}_t": comparison.t,
        f"{metric}_p": comparison.p,
    }


def report_metrics(runs: pd.DataFrame) -> tuple[str, ...]:
    """The metrics the table compares: the test metrics, and those at the budget when known."""
    return METRICS + (BUDGET_METRICS if set(BUDGET_METRICS) <= set(runs.columns) else ())


def ablation_table(runs: pd.DataFrame, settings: ReportSettings | None = None) -> pd.DataFrame:
    """The long-format table (one row per dataset, model, ablation); see the module docstring."""
    settings = settings or ReportSettings()
    metrics = report_metrics(runs)
    groups = {key: frame for key, frame in runs.groupby(KEY, sort=True)}
    rows = []
    for (dataset, model, ablation), frame in groups.items():
        row: dict[str, object] = {
            "dataset": dataset,
            "model": model,
            "ablation": ablation,
            "runs": len(frame),
            "seeds": ",".join(str(s) for s in sorted(frame["seed"])),
        }
        baseline = _baseline_of(groups, dataset, model)
        row["baseline"] = "" if baseline is None else f"{baseline.iloc[0]['model']} {BASELINE}"
        for metric in metrics:
            values = frame.set_index("seed")[metric].astype(np.float64)
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            if baseline is None or baseline is frame:
                row[f"{metric}_diff"] = 0.0 if baseline is frame else math.nan
                comparison = None
            else:
                base = baseline.set_index("seed")[metric].astype(np.float64)
                row[f"{metric}_diff"] = float(values.mean() - base.mean())
                comparison = paired(values, base)
            row.update(_comparison_columns(metric, comparison))
            row[f"{metric}_mdd"] = (
                math.nan
                if comparison is None
                else minimum_detectable_difference(comparison.std, comparison.n, ALPHA)
            )
        paper = paper_numbers(dataset, model, ablation, frame.iloc[0]["params"])
        row["paper_auc"], row["paper_logloss"] = paper if paper else (math.nan, math.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    _add_verdicts(table, runs, settings, metrics)
    order = {name: i for i, name in enumerate(ABLATION_NAMES)}  # the ablation group's order
    table["_order"] = table["ablation"].map(lambda a: order.get(a, len(order)))
    table = table.sort_values(["dataset", "model", "_order", "ablation"]).drop(columns="_order")
    return table.reset_index(drop=True)


VERDICT_COLUMNS = {
    "verdict": "verdict",
    "settled": "settled",
    "margin": "margin",
    "ci_low": "vci_low",
    "ci_high": "vci_high",
    "level": "level",
    "seeds_needed": "seeds_needed",
}


def _add_verdicts(
    table: pd.DataFrame, runs: pd.DataFrame, settings: ReportSettings, metrics: tuple[str, ...]
) -> None:
    """The four verdicts of every comparison in the table, as `{metric}_verdict` etc.; rows
    without a comparison (the baselines) get an empty verdict."""
    verdicts = study_verdicts(
        runs,
        margins=settings.margins,
        alpha=settings.alpha,
        looks=settings.looks,
        metrics=metrics,
        baseline=BASELINE,
    ).set_index(["dataset", "model", "ablation", "metric"])
    for metric in metrics:
        for source, column in VERDICT_COLUMNS.items():
            values = []
            for dataset, model, ablation in zip(
                table["dataset"], table["model"], table["ablation"], strict=True
            ):
                key = (dataset, model, ablation, metric)
                found = verdicts[source].get(key) if key in verdicts.index else None
                if found is None:
                    found = (
                        "" if source == "verdict" else (False if source == "settled" else math.nan)
                    )
                values.append(found)
            table[f"{metric}_{column}"] = values


def consistency_warnings(runs: pd.DataFrame) -> list[str]:
    """What makes the compared runs not comparable: code versions or paired data that differ.

    Every (dataset, model) group must share one code version (tag `code_version`); runs of one
    seed on one dataset are paired, so they must share one prepared dataset (`data_fingerprint`).
    A missing tag (a run from before these tags) counts as its own value, "untagged".
    """
    warnings = []
    for column, tag, key, what in (
        ("code_version", TAG_CODE_VERSION, ["dataset", "model"], "code versions"),
        ("data_fingerprint", TAG_DATA_FINGERPRINT, ["dataset", "seed"], "prepared data"),
    ):
        if column not in runs:
            continue
        for group, frame in runs.groupby(key, sort=True):
            counts = frame[column].fillna("untagged").replace("", "untagged").value_counts()
            if len(counts) > 1:
                listing = ", ".join(f"{value} ({count} runs)" for value, count in counts.items())
                label = " ".join(f"{k}={v}" for k, v in zip(key, group, strict=True))
                warnings.append(
                    f"{label}: the compared runs differ in {what} (tag {tag}): {listing}"
                )
    return warnings


def training_note(runs: pd.DataFrame) -> str:
    """Whether early stopping ended every run (metric `stopped_early`), in one sentence."""
    if "stopped_early" not in runs or runs["stopped_early"].isna().all():
        return ""
    capped = runs[runs["stopped_early"] == 0.0]
    known = int(runs["stopped_early"].notna().sum())
    if capped.empty:
        return f"**Training.** Early stopping ended all {known} runs (none reached its epoch cap)."
    names = ", ".join(
        f"{r.model} {r.ablation} seed {r.seed}" for r in capped.itertuples(index=False)
    )
    return (
        f"**Training.** {len(capped)} of {known} runs reached trainer.max_epochs before early "
        f"stopping ended them, so they may be undertrained: {names}."
    )


def paper_gap_seeds(table: pd.DataFrame, power: float = POWER) -> pd.DataFrame:
    """Seeds the paper's Table 5 AUC gaps would need at this study's observed paired spread, for
    the verdict better / worse at the level this report's verdicts read.

    A gap δ settles as better / worse when its interval excludes 0, which is the two-sided paired
    t test at the verdicts' level α' = α / (tests · looks) (`auc_level`, Bonferroni). Seeds
    needed: the smallest n with that test's power >= `power` for δ at spread s (noncentral t,
    `statistics.seeds_needed`); resolvable Δ: the δ these seeds detect with `power` at α'.
    """
    rows = []
    for _, row in table.iterrows():
        gaps = {name: paper_gap(name, row["ablation"]) for name in PAPER_DATASETS}
        spread, level = row["auc_paired_std"], row["auc_level"]
        if all(g is None for g in gaps.values()) or not row["auc_paired_n"] >= 2:
            continue
        entry: dict[str, object] = {
            "dataset": row["dataset"],
            "model": row["model"],
            "ablation": row["ablation"],
            "paired std Δ AUC": spread,
            "seeds": int(row["auc_paired_n"]),
            "resolvable Δ AUC": minimum_detectable_difference(
                spread, int(row["auc_paired_n"]), level, power
            ),
        }
        for name, gap in gaps.items():
            entry[f"{name} gap"] = math.nan if gap is None else gap
            needed = None if gap is None else seeds_needed(gap, spread, level, power)
            entry[f"{name} seeds needed"] = "" if needed is None else str(needed)
        rows.append(entry)
    return pd.DataFrame(rows)
