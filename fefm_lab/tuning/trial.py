"""A tuning trial's side, inside its job: report the validation metric after each epoch to the
study and stop when the study's pruner says so (median, successive halving).

The job finds its trial by `tune.storage`, `tune.study` and `tune.trial` (set by the sweeper);
the metric (`val_logloss` or `val_auc`) and the pruner are the study's user attributes, so every
job of a study prunes alike wherever it runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from fefm_lab.config.schema import TuneConfig

TAG_STUDY = "optuna_study"
TAG_PRUNED_AT = "pruned_at_epoch"


class TrialReporter:
    """`__call__(epoch, record)` reports the epoch's metric; True when the trial is pruned."""

    def __init__(self, tune: TuneConfig, last_epoch: int | None = None) -> None:
        import optuna  # only trials need it: a plain run does not import it

        from fefm_lab.tuning.study import (
            ATTR_OBJECTIVE,
            ATTR_PRUNER,
            make_pruner,
            open_storage,
            trial_id,
        )

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = open_storage(str(tune.storage))
        probe = optuna.load_study(study_name=str(tune.study), storage=storage)
        self.objective: str = probe.user_attrs.get(ATTR_OBJECTIVE, "val_logloss")
        pruner = make_pruner(probe.user_attrs.get(ATTR_PRUNER))
        self.study = optuna.load_study(study_name=str(tune.study), storage=storage, pruner=pruner)
        self.number = int(tune.trial)
        self.trial = optuna.trial.Trial(self.study, trial_id(storage, self.study, self.number))
        self.pruned_at: int | None = None
        self.last_epoch = last_epoch  # its value is reported, never pruned: training is done

    def catch_up(self, history: Iterable[Mapping[str, float]]) -> None:
        """Report the epochs a resumed run did before (no pruning decision on them)."""
        for record in history:
            self._report(int(record["epoch"]), record)

    def _report(self, epoch: int, record: Mapping[str, float]) -> bool:
        value = record.get(self.objective)
        if value is None or not math.isfinite(float(value)):
            return False
        self.trial.report(float(value), epoch)
        return True

    def __call__(self, epoch: int, record: Mapping[str, float]) -> bool:
        if self.last_epoch is not None and epoch >= self.last_epoch:
            self._report(epoch, record)
            return False
        if self._report(epoch, record) and self.trial.should_prune():
            self.pruned_at = epoch
            return True
        return False


def trial_reporter(tune: TuneConfig, max_epochs: int) -> TrialReporter | None:
    """The job's reporter when it is a tuning trial (of at most `max_epochs`), else None."""
    if tune.trial is None or not tune.storage or not tune.study:
        return None
    return TrialReporter(tune, last_epoch=max_epochs)
