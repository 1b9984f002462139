"""From tracked runs to the ablation table.

For each (dataset, model, ablation): test AUC and log loss as mean +- sample std (ddof 1) over
seeds, the difference of means to the baseline (the same model without ablation), and a paired
comparison over the seeds both have: d_s = x_s - baseline_s, mean(d), std(d) (ddof 1),
t = mean(d) / (std(d) / sqrt(n)) with n - 1 degrees of freedom and its two-sided p-value.
Pairing removes the seed's shared effect (same split, same initialisation stream), which is what
makes differences of 1e-4 AUC readable at all.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from fefm_lab.config.ablation import ABLATION_NAMES
from fefm_lab.errors import UserError
from fefm_lab.report.paper import paper_numbers
from fefm_lab.tracking.store import (
    ROLE_JOB,
    TAG_OUTCOME,
    TAG_ROLE,
    TAG_SWEEP,
    TrackingStore,
    latest_per_config,
)

METRICS = ("auc", "logloss")
BASELINE = "none"
KEY = ["dataset", "model", "ablation"]


def load_runs(store: TrackingStore, sweep: str | None = None) -> pd.DataFrame:
    """One row per configuration whose latest run (`latest_per_config`) FINISHED with test
    metrics; then the newest per seed (`latest_per_seed`)."""
    query = f"tags.{TAG_ROLE} = '{ROLE_JOB}'"
    if sweep:
        query += f" and tags.{TAG_SWEEP} = '{sweep}'"
    rows = {}
    for run in latest_per_config(store.search(query)):
        tags, metrics = run.data.tags, run.data.metrics
        if (
            run.info.status != "FINISHED"
            or tags.get(TAG_OUTCOME) == "skipped"
            or "test_auc" not in metrics
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
            "params": dict(run.data.params),
            "start_time": run.info.start_time,
        }
    if not rows:
        where = f"sweep {sweep!r} of " if sweep else ""
        raise UserError(
            f"no finished runs with test metrics in {where}experiment {store.experiment_name!r} "
            f"({store.tracking_uri}); run `fefm-lab run -m ...` first or check mlflow.experiment"
        )
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


def paired(values: pd.Series, baseline: pd.Series) -> dict[str, float]:
    """Paired differences over the seeds both series have (indexed by seed)."""
    common = values.index.intersection(baseline.index)
    differences = (values.loc[common] - baseline.loc[common]).to_numpy(dtype=np.float64)
    n = len(differences)
    mean = float(differences.mean()) if n else math.nan
    std = float(differences.std(ddof=1)) if n > 1 else math.nan
    if n > 1 and std > 0:
        t = mean / (std / math.sqrt(n))
        p = float(2 * stats.t.sf(abs(t), n - 1))
    else:
        t = p = math.nan
    return {"paired_n": n, "paired_diff": mean, "paired_std": std, "t": t, "p": p}


def _baseline_of(groups: dict, dataset: str, model: str) -> pd.DataFrame | None:
    return groups.get((dataset, model, BASELINE), groups.get((dataset, "deepfefm", BASELINE)))


def ablation_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The long-format table (one row per dataset, model, ablation); see the module docstring."""
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
        for metric in METRICS:
            values = frame.set_index("seed")[metric].astype(np.float64)
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            if baseline is None or baseline is frame:
                row[f"{metric}_diff"] = 0.0 if baseline is frame else math.nan
                comparison = paired(values.iloc[:0], values.iloc[:0])
            else:
                base = baseline.set_index("seed")[metric].astype(np.float64)
                row[f"{metric}_diff"] = float(values.mean() - base.mean())
                comparison = paired(values, base)
            for name, value in comparison.items():
                row[f"{metric}_{name}"] = value
        paper = paper_numbers(dataset, model, ablation, frame.iloc[0]["params"])
        row["paper_auc"], row["paper_logloss"] = paper if paper else (math.nan, math.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    order = {name: i for i, name in enumerate(ABLATION_NAMES)}  # the ablation group's order
    table["_order"] = table["ablation"].map(lambda a: order.get(a, len(order)))
    table = table.sort_values(["dataset", "model", "_order", "ablation"]).drop(columns="_order")
    return table.reset_index(drop=True)
