"""fefm-lab's Optuna sweeper (`hydra/sweeper=optuna`): tune on Optuna's ask/tell API through
whatever launcher is configured (basic, joblib, Ray, Slurm).

The search space is Hydra's Optuna-sweeper syntax (`fefm_lab.tuning.space`), under
`hydra.sweeper.params` or on the command line. Each batch asks `n_jobs` trials, launches them as
ordinary sweep jobs (each an MLflow child run of the sweep's parent) with `tune.*` naming their
trial, and tells the study each job's validation metric at its best epoch (never the test
split). A job whose study prunes it stops after that epoch and is told PRUNED. The study lives in
RDB storage (`fefm_lab.tuning.study`): repeated, killed or fed by several launches at once, it
ends with `n_trials` ended trials. Keys and defaults: conf/hydra/sweeper/optuna.yaml.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from fefm_lab.errors import ConfigError
from fefm_lab.sweep.job import SweepJobError
from fefm_lab.tuning.space import search_space, validation_values
from fefm_lab.uris import masked_uri

SAMPLERS = ("tpe", "random")
PRUNERS = (None, "none", "median", "successive_halving")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class OptunaSweeper(Sweeper):
    """Hydra Sweeper on an Optuna study (see the module docstring)."""

    # `fefm_lab.sweep.plan` checks these values of each searched key before any trial starts
    validation_values = staticmethod(validation_values)

    def __init__(
        self,
        objective: str = "val_logloss",
        direction: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        sampler: str = "tpe",
        seed: int | None = 1,
        startup_trials: int = 5,
        pruner: Mapping[str, Any] | None = None,
        storage: str | None = None,
        study_name: str | None = None,
        per: Sequence[str] = (),
        final_seeds: Sequence[int] = (),
        params: Mapping[str, Any] | None = None,
    ) -> None:
        from fefm_lab.tuning.study import OBJECTIVES

        if objective not in OBJECTIVES:
            raise ConfigError(
                f"hydra.sweeper.objective={objective}: expected val_logloss or val_auc "
                "(validation only: the test split never chooses)"
            )
        if direction is not None and direction != OBJECTIVES[objective]:
            raise ConfigError(
                f"hydra.sweeper.direction={direction}: {objective} is to "
                f"{OBJECTIVES[objective]} (leave direction null)"
            )
        for key, value in (("n_trials", n_trials), ("n_jobs", n_jobs)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"hydra.sweeper.{key}={value}: expected an integer >= 1")
        if sampler not in SAMPLERS:
            raise ConfigError(f"hydra.sweeper.sampler={sampler}: expected tpe or random")
        pruner = dict(pruner or {})
        if pruner.get("name") not in PRUNERS:
            raise ConfigError(
                f"hydra.sweeper.pruner.name={pruner.get('name')}: expected null, median or "
                "successive_halving"
            )
        self.objective, self.n_trials, self.n_jobs = objective, n_trials, n_jobs
        self.sampler_name, self.seed, self.startup_trials = sampler, seed, startup_trials
        self.pruner = pruner if pruner.get("name") not in (None, "none") else None
        self.storage_url, self.study_name = storage, study_name
        self.params = dict(params or {})
        self.per = [str(key) for key in per]
        self.final_seeds = [int(seed) for seed in final_seeds]
        self.config: DictConfig | None = None
        self.launcher = None
        self._in_flight: list[int] = []  # storage ids of this launch's running trials
        self._job_number = 0

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ------------------------------------------------------------ the study

    def _sampler(self, offset: int = 0):
        """The sampler, seeded with `seed` plus the trials the study already holds: a fresh
        study is reproducible, a continued one does not propose its first points again."""
        import optuna

        seed = None if self.seed is None else self.seed + offset
        if self.sampler_name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=self.startup_trials,
            constant_liar=self.n_jobs > 1,  # a batch's trials spread instead of repeating
        )

    def _storage_url(self) -> str:
        from fefm_lab.tuning.study import default_storage

        if self.storage_url:
            return str(self.storage_url)
        assert self.config is not None
        server = self.config.get("server") or {}
        return default_storage(
            str(self.config.mlflow.tracking_uri), server.get("backend_store_uri") or None
        )

    def sweep(self, arguments: list[str]) -> None:
        import itertools

        import optuna

        from fefm_lab.sweep.callback import sweep_store
        from fefm_lab.sweep.parent import parent_of
        from fefm_lab.tuning import study as studies
        from fefm_lab.tuning.summary import record_settings, record_study

        assert self.config is not None and self.launcher is not None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        parser = OverridesParser.create()
        params = [f"{k}={v}" for k, v in self.params.items() if v is not None]
        lines = params + list(arguments)
        dimensions, fixed = search_space(parser.parse_overrides(lines))
        groups = []  # each `per` key's values: tuned apart, with the same budget
        for key in self.per:
            if key in dimensions:
                groups.append([f"{key}={text}" for text in dimensions.pop(key).texts])
        if not dimensions:
            raise ConfigError(
                "hydra/sweeper=optuna: no search space (give hydra.sweeper.params or sweep "
                "overrides such as 'trainer.learning_rate=tag(log, interval(0.01, 1.0))')"
            )
        url = self._storage_url()
        storage = studies.open_storage(url)
        base = self.study_name or str(self.config.sweep.name)
        store = sweep_store(self.config)
        parent = parent_of(store, str(self.config.sweep.invocation))
        tuned = []
        for group in itertools.product(*groups):
            label = " ".join(group)
            name = f"{base} [{label}]" if label else base
            study = studies.open_study(
                storage, name, objective=self.objective, sampler=self._sampler(), pruner=self.pruner
            )
            study.sampler = self._sampler(len(study.get_trials(deepcopy=False)))
            self._tune(study, storage, url, [*fixed, *group], dimensions)
            if parent is None:
                continue
            best = record_study(study, dimensions, store, parent.info.run_id, self.objective, label)
            if best is not None:
                _say(
                    f"study {name!r}: best trial {study.best_trial.number}, {self.objective} "
                    f"{study.best_value:.6f}: {' '.join(best)}"
                )
            tuned.append((list(group), study, best))
        if parent is not None and groups:
            record_settings(tuned, store, parent.info.run_id, self.objective)
        if self.final_seeds:
            self._run_tuned(fixed, tuned)

    def _tune(self, study, storage, url: str, fixed: list[str], dimensions) -> None:
        """Ask, launch and tell batches of trials until the study has its `n_trials`."""
        from fefm_lab.tracking.liveness import HEARTBEAT_EVERY_S, beating
        from fefm_lab.tuning import study as studies

        name = study.study_name
        for number, reason in studies.reap_abandoned(study, storage):
            _say(f"trial {number} of study {name!r} abandoned ({reason}): asked again")
        distributions = {key: d.distribution for key, d in dimensions.items()}
        tune = [f"tune.storage='{url}'", f"tune.study='{name}'"]
        _say(
            f"study {name!r} ({masked_uri(url)}): {self.n_trials} trials, "
            f"{self.n_jobs} per batch, {studies.remaining(study, self.n_trials)} to run"
        )

        def heartbeat() -> None:
            for trial_id in list(self._in_flight):
                studies.beat(storage, trial_id)

        with beating(heartbeat, HEARTBEAT_EVERY_S, "trial-heartbeat"):
            while (left := studies.remaining(study, self.n_trials)) > 0:
                batch = []
                for _ in range(min(self.n_jobs, left)):
                    trial = study.ask(distributions)
                    trial_id = studies.trial_id(storage, study, trial.number)
                    studies.claim(storage, trial_id)
                    if studies.running_elsewhere(study, storage, trial.number, trial.params):
                        continue  # another launch runs this point: ask again
                    if studies.within_budget(study, storage, trial.number, self.n_trials):
                        batch.append(trial)
                        self._in_flight.append(trial_id)
                if not batch:
                    continue
                jobs = [
                    [
                        *fixed,
                        *(dimensions[key].override(trial.params[key]) for key in dimensions),
                        *tune,
                        f"tune.trial={trial.number}",
                    ]
                    for trial in batch
                ]
                try:
                    returns = self._launch(jobs)
                except BaseException:
                    self._give_up(study, storage, "its launch stopped before the trial ended")
                    raise
                told = zip(batch, returns, strict=True)
                errors = [self._tell(study, trial, ret) for trial, ret in told]
                self._in_flight.clear()
                for error in errors:
                    if error is not None and type(error) is SweepJobError:
                        raise error

    def _launch(self, jobs: list[list[str]]):
        assert self.launcher is not None
        returns = self.launcher.launch(jobs, initial_job_idx=self._job_number)
        self._job_number += len(jobs)
        return returns

    def _run_tuned(self, fixed: list[str], tuned) -> None:
        """Each study's best settings over `final_seeds`: ordinary jobs of the same sweep, which
        its ablation report compares (tagged with the settings they got)."""
        kept = [line for line in fixed if line.split("=", 1)[0].lstrip("+~") != "seed"]
        jobs = []
        for group, _study, best in tuned:
            if best is None:
                _say(f"no finished trial for {' '.join(group) or 'the study'}: not run over seeds")
                continue
            settings = " ".join(best)
            for seed in self.final_seeds:
                jobs.append([*kept, *group, *best, f"seed={seed}", f"tune.settings='{settings}'"])
        if not jobs:
            return
        _say(f"tuned settings over seeds {list(self.final_seeds)}: {len(jobs)} runs")
        for ret in self._launch(jobs):
            try:
                ret.return_value  # noqa: B018 - raises what the job raised
            except SweepJobError:
                raise
            except Exception as error:
                _say(f"run of tuned settings failed: {error}")

    def _give_up(self, study, storage, reason: str) -> None:
        """Abandon this launch's running trials (asked again by the next launch)."""
        from fefm_lab.tuning import study as studies

        for trial in study.get_trials(deepcopy=False):
            trial_id = studies.trial_id(storage, study, trial.number)
            if trial_id in self._in_flight and trial.state.name == "RUNNING":
                storage.set_trial_user_attr(trial_id, studies.ATTR_ABANDONED, reason)
                study.tell(trial.number, state=studies.TrialState.FAIL)
                study.enqueue_trial(trial.params, user_attrs={studies.ATTR_RETRY_OF: trial.number})
        self._in_flight.clear()

    def _tell(self, study, trial, ret: JobReturn) -> BaseException | None:
        """Tell the study how the trial's job ended; the job's exception, if it raised one."""
        from optuna.trial import TrialState

        from fefm_lab.tuning.summary import TAG_TRIAL_STATE

        try:
            outcome = ret.return_value  # raises what the job raised
        except Exception as error:
            study.tell(trial, state=TrialState.FAIL)
            _say(f"trial {trial.number} FAILED: {error}")
            return error
        value = getattr(outcome, f"best_{self.objective}", None)
        if getattr(outcome, "pruned_at_epoch", None) is not None:
            study.tell(trial, state=TrialState.PRUNED)
            state = TrialState.PRUNED
        elif outcome.status in ("finished", "already_finished") and value is not None:
            study.tell(trial, float(value))
            state = TrialState.COMPLETE
        else:
            study.tell(trial, state=TrialState.FAIL)
            state = TrialState.FAIL
        if outcome.run_id:
            from fefm_lab.sweep.callback import sweep_store

            assert self.config is not None
            sweep_store(self.config).client.set_tag(outcome.run_id, TAG_TRIAL_STATE, state.name)
        return None
