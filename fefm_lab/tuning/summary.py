"""What a finished study leaves on the sweep's parent run: the best trial's overrides and value,
each trial's state on its child run, and Optuna's standard plots (optimisation history,
parameter importances, parallel coordinates) as PNG artifacts under `tuning/`."""

from __future__ import annotations

import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from fefm_lab.markdown import markdown_table
from fefm_lab.tracking.run_logging import log_metrics, log_text
from fefm_lab.tracking.store import TrackingStore, tag_value
from fefm_lab.tuning.space import Dimension

TAG_BEST_TRIAL, TAG_BEST_OVERRIDES = "best_trial", "best_overrides"
TAG_TRIAL_STATE = "optuna_state"  # on a trial's run: COMPLETE | PRUNED | FAIL


def best_overrides(study: optuna.Study, dimensions: Mapping[str, Dimension]) -> list[str] | None:
    """The best finished trial's searched settings as overrides (None before any finished)."""
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return None
    params = study.best_trial.params
    return [dimensions[key].override(params[key]) for key in dimensions if key in params]


def _plots(study: optuna.Study, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    wanted = {"optimization_history": optuna_plots.plot_optimization_history}
    if len(complete) >= 2 and complete[0].params:
        wanted["parallel_coordinate"] = optuna_plots.plot_parallel_coordinate
        if len(complete[0].params) >= 2:  # importances of a single parameter say nothing
            wanted["param_importances"] = optuna_plots.plot_param_importances
    written = []
    for name, plot in wanted.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = plot(study)
            figure = getattr(axes, "figure", None) or axes.flat[0].figure
            path = folder / f"{name}.png"
            figure.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(figure)
            written.append(path)
        except Exception as error:  # a plot Optuna cannot draw for this study: said, not fatal
            print(f"tuning plot {name} not drawn: {error}", file=sys.stderr)
    return written


def _key(label: str) -> str:
    """A group label as part of an MLflow key (no `=`): `ablation=shallow` -> `ablation/shallow`."""
    return label.replace("=", "/").replace(" ", "/")


def record_study(
    study: optuna.Study,
    dimensions: Mapping[str, Dimension],
    store: TrackingStore,
    parent_run_id: str,
    objective: str,
    label: str = "",
) -> list[str] | None:
    """Best trial's overrides and value on the parent, and the plots; the best overrides.

    `label` names one study of several (`ablation=shallow`): its tags, metrics and plots carry
    it (`best_overrides/ablation/shallow`, `tuning/ablation/shallow/`)."""
    client = store.client
    suffix = f"/{_key(label)}" if label else ""
    client.set_tag(parent_run_id, f"optuna_study{suffix}", study.study_name)
    counts = {state.name: 0 for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    for trial in study.get_trials(deepcopy=False):
        if trial.state.name in counts:
            counts[trial.state.name] += 1
    log_metrics(
        client, parent_run_id, {f"trials_{k.lower()}{suffix}": v for k, v in counts.items()}
    )
    best = best_overrides(study, dimensions)
    if best is not None:
        client.set_tag(parent_run_id, f"{TAG_BEST_TRIAL}{suffix}", str(study.best_trial.number))
        client.set_tag(parent_run_id, f"{TAG_BEST_OVERRIDES}{suffix}", tag_value(" ".join(best)))
        log_metrics(client, parent_run_id, {f"best_{objective}{suffix}": study.best_value})
    with tempfile.TemporaryDirectory() as folder:
        for path in _plots(study, Path(folder)):
            client.log_artifact(parent_run_id, str(path), f"tuning{suffix}")
    return best


# (the group's overrides, its study, the best trial's settings or None), one per study
Tuned = Sequence[tuple[list[str], optuna.Study, list[str] | None]]


def settings_table(tuned: Tuned, objective: str) -> str:
    """Markdown: each study's group, trials, best value and the settings it chose."""
    rows = []
    for group, study, best in tuned:
        states = [t.state for t in study.get_trials(deepcopy=False)]
        rows.append(
            {
                "tuned for": " ".join(group) or "(all)",
                "trials (finished / pruned / failed)": (
                    f"{states.count(TrialState.COMPLETE)} / {states.count(TrialState.PRUNED)} / "
                    f"{states.count(TrialState.FAIL)}"
                ),
                f"best {objective}": f"{study.best_value:.5f}" if best is not None else "",
                "chosen settings": " ".join(best) if best is not None else "(no finished trial)",
            }
        )
    return markdown_table(pd.DataFrame(rows))


def record_settings(
    tuned: Tuned,
    store: TrackingStore,
    parent_run_id: str,
    objective: str,
) -> str:
    """The settings each study chose, as `tuning/settings.md` on the parent (and printed)."""
    table = settings_table(tuned, objective)
    log_text(store.client, parent_run_id, table + "\n", "tuning/settings.md")
    print(f"\ntuned settings (validation {objective}):\n\n{table}", file=sys.stderr, flush=True)
    return table
