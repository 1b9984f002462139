"""Before a sweep starts: every job's overrides, each job's config validated, the sweep's name.

Runs in the launching process before Hydra does, because a mistake must stop the command (exit 2)
before the first job starts, and exceptions raised inside Hydra callbacks only become warnings.
The expansion uses Hydra's public override parser: the sweep is the experiment's
`hydra.sweeper.params` followed by the command line (a later value of a key wins), and choice,
range and `glob(*)` sweeps expand to their cartesian product, as Hydra's basic sweeper does.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fefm_lab.cluster.launchers import LauncherPlacement
from fefm_lab.cluster.preflight import placement_and_root
from fefm_lab.errors import ConfigError

# Overrides that do not change what a sweep computes: left out of its generated name.
NAME_NEUTRAL_PREFIXES = ("paths.", "mlflow.", "force", "threads", "hydra", "sweep.")


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep: its name, each job's overrides and resolved config, the launcher."""

    name: str
    jobs: list[list[str]]
    configs: list[dict[str, Any]]
    launcher: str  # the launcher's `_target_`
    threads: int | None  # TensorFlow threads per job when the launcher runs jobs side by side
    placement: LauncherPlacement  # where the launcher runs the jobs (fefm_lab.cluster)
    overrides: list[str]  # the command line, plus an absolute paths.root_dir where jobs need it
    # what is launched: "N jobs", or for a sweeper choosing its own jobs, what it checked
    described: str = ""

    @property
    def tracking(self) -> dict[str, Any]:
        """`mlflow` settings (the same for every job: tracking keys are never swept)."""
        return self.configs[0]["mlflow"]


def sweeper_class(base: DictConfig) -> type | None:
    """The configured sweeper's class (None: Hydra's basic sweeper)."""
    from hydra.utils import get_class

    target = str(base.hydra.sweeper.get("_target_", ""))
    if not target or target.endswith(".BasicSweeper"):
        return None
    return get_class(target)


def _sweep_values(override, sweeper: type | None) -> list[str]:
    """The values of an override the plan checks: every value of a listed sweep; for a sweeper
    that chooses its jobs itself, those its `validation_values(override)` names."""
    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    choose = getattr(sweeper, "validation_values", None)
    if choose is not None:
        return choose(override)
    if not override.is_discrete_sweep():  # interval sweeps belong to optimising sweepers
        raise ConfigError(
            f"{override.input_line}: only choice, range and glob sweeps can be listed as jobs "
            "(an interval sweep needs a sweeper that chooses values: hydra/sweeper=optuna)"
        )
    return list(override.sweep_string_iterator())


def expand_jobs(overrides: Sequence[str]) -> tuple[list[list[str]], DictConfig]:
    """Every job's override list, and the base config (with Hydra's node) the sweep starts from."""
    from fefm_lab.config.compose import CONFIG_NAME, VERSION_BASE, config_dir, hydra_message

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(
            version_base=VERSION_BASE, config_dir=config_dir(), job_name="fefm-lab"
        ):
            parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
            parsed = parser.parse_overrides(list(overrides))
            fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
            base = compose(CONFIG_NAME, overrides=fixed, return_hydra_config=True)
            sweeper = sweeper_class(base)
            params = base.hydra.sweeper.get("params") or {}
            # a null entry takes out a key that an included preset sweeps
            lines = [f"{k}={v}" for k, v in params.items() if v is not None] + list(overrides)
            choices: dict[str, list[str]] = {}  # insertion order: a later key keeps its place
            for override in parser.parse_overrides(lines):
                key = override.get_key_element()
                values = _sweep_values(override, sweeper)
                choices[key] = [f"{key}={value}" for value in values]
            # keys a sweeper sets itself (adaptive_seeds: seed=1..max_seeds): validated, and
            # their data prepared, like listed values
            own_axes = getattr(sweeper, "own_axes", None)
            for key, values in (own_axes(base.hydra.sweeper) if own_axes else {}).items():
                choices[key] = [f"{key}={value}" for value in values]
    except (HydraException, OmegaConfBaseException, ValueError, ImportError) as error:
        raise ConfigError(hydra_message(error)) from None
    finally:
        GlobalHydra.instance().clear()
    return [list(job) for job in itertools.product(*choices.values())], base


def sweep_name(base: DictConfig, overrides: Sequence[str]) -> str:
    """`sweep.name`, else the experiment preset's name, else one made from the overrides."""
    if base.sweep.name:
        return str(base.sweep.name)
    experiment = base.hydra.runtime.choices.get("experiment")
    if experiment:
        return str(experiment)
    relevant = sorted(o for o in overrides if not o.startswith(NAME_NEUTRAL_PREFIXES))
    text = re.sub(r"[^A-Za-z0-9_.,=+-]+", "_", " ".join(relevant))
    return f"sweep_{text}"[:200] if text else "sweep"


def threads_per_job(launcher: DictConfig) -> int | None:
    """Cores / parallel jobs for the joblib launcher (its workers share this machine's cores);
    the CPUs a job reserves for Ray (`ray.remote.num_cpus`) and Slurm (`cpus_per_task`)."""
    target = str(launcher.get("_target_", ""))
    reserved = None
    if "ray_launcher" in target:
        reserved = (launcher.get("ray") or {}).get("remote", {}).get("num_cpus")
    elif "submitit_launcher" in target:
        reserved = launcher.get("cpus_per_task")
    if reserved is not None:
        return max(1, int(reserved))
    if "joblib" not in target:
        return None
    cores = os.cpu_count() or 1
    jobs = launcher.get("n_jobs", -1) or -1
    jobs = cores if jobs < 0 else jobs
    return max(1, cores // max(1, jobs))


def plan_sweep(overrides: Sequence[str]) -> SweepPlan:
    """Expand and validate the sweep; ConfigError (naming the job) on the first bad job."""
    from fefm_lab.config.compose import resolved_config

    jobs, base = expand_jobs(overrides)
    placement, root = placement_and_root(base)
    if root:  # jobs start in another working directory: a relative paths.root_dir made absolute
        overrides = [*overrides, *root]
        jobs, base = expand_jobs(overrides)
    check = getattr(sweeper_class(base), "check_config", None)  # a sweeper's own keys' ranges
    if check is not None:
        check(base.hydra.sweeper)
    configs = []
    for job in jobs:  # every job's config is checked before the first one starts
        try:
            configs.append(resolved_config(job))
        except ConfigError as error:
            raise ConfigError(f"in sweep job {' '.join(job)}: {error}") from None
    launcher = OmegaConf.to_container(base.hydra.launcher, resolve=False)
    sweeper = sweeper_class(base)
    described = f"{len(jobs)} jobs"
    if sweeper is not None:
        described = f"{sweeper.__name__}, {len(jobs)} configurations of its space checked"
    return SweepPlan(
        name=sweep_name(base, overrides),
        jobs=jobs,
        configs=configs,
        launcher=str(launcher.get("_target_", "")),
        threads=threads_per_job(base.hydra.launcher),
        placement=placement,
        overrides=list(overrides),
        described=described,
    )
