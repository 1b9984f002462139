"""`fefm-lab`: the command line (run, sweep, prepare, synth, report, ui, show).

`run` hands over to Hydra (`fefm_lab.hydra_app`). Before Hydra starts, this process composes and
validates the job's config (a mistake exits 2 before any data is read) and creates the MLflow
database and experiment; `run -m` is a sweep (`fefm_lab.sweep`). The read-only subcommands use
Hydra's compose API.
"""

from __future__ import annotations

import importlib.resources
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import fefm_lab
from fefm_lab.errors import ConfigError, UserError
from fefm_lab.hydra_app import CONFIG_NAME, VERSION_BASE

SUBCOMMANDS = {
    "run": "train one configuration, or a sweep with -m (Hydra multirun)",
    "prepare": "prepare (and cache) the configured dataset",
    "synth": "write a synthetic CTR data file",
    "report": "write the ablation report of an experiment under results/<experiment>/",
    "ui": "open the MLflow UI on 127.0.0.1 for the configured tracking store",
    "show": "print the composed configuration",
}


def config_dir() -> str:
    """The directory of the packaged configs (`fefm_lab.conf`, which is `conf/` in a checkout).

    An editable install made before `conf/` had files does not map `fefm_lab.conf`; the source
    checkout's `conf/` next to the package is then the same directory.
    """
    try:
        return str(importlib.resources.files("fefm_lab.conf"))
    except ModuleNotFoundError:
        return str(Path(fefm_lab.__file__).resolve().parent.parent / "conf")


# ---------------------------------------------------------------- composing


def hydra_message(error: BaseException) -> str:
    parts = []
    while error is not None:
        # Hydra appends its search path to a missing-option message: noise for a user.
        text = str(error).split("\nConfig search path:")[0].strip()
        if text and text not in parts:
            parts.append(text)
        error = error.__cause__
    return "\n".join(parts)


def compose_config(overrides: Sequence[str], *, with_hydra: bool = False) -> DictConfig:
    """Compose `config.yaml` with overrides; Hydra's complaints become ConfigErrors (exit 2)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(
        version_base=VERSION_BASE, config_dir=config_dir(), job_name="fefm-lab"
    ):
        try:
            return compose(CONFIG_NAME, overrides=list(overrides), return_hydra_config=with_hydra)
        except (HydraException, OmegaConfBaseException, ValueError) as error:
            raise ConfigError(hydra_message(error)) from None


def resolved_config(overrides: Sequence[str]) -> dict[str, Any]:
    """Composed, validated and interpolated: what a job would see."""
    from fefm_lab.runner import resolve, validate_config

    cfg = compose_config(overrides)
    try:
        resolved = resolve(cfg)
    except OmegaConfBaseException as error:
        raise ConfigError(hydra_message(error)) from None
    validate_config(resolved)
    return resolved


# ---------------------------------------------------------------- run


def _run_once(overrides: Sequence[str]):
    """One job through Hydra (its run directory and logging); the job's outcome."""
    from fefm_lab.hydra_app import launch_hydra
    from fefm_lab.runner import run_job

    outcomes = []
    launch_hydra(overrides, lambda cfg: outcomes.append(run_job(cfg)), config_dir())
    return outcomes[-1]


def _print_result(outcome, resolved: dict[str, Any]) -> None:
    from fefm_lab.runner import ui_command

    def number(value: float | None) -> str:
        return "(not recorded)" if value is None else f"{value:.5f}"

    print(f"test AUC      {number(outcome.test_auc)}")
    print(f"test log loss {number(outcome.test_logloss)}")
    print(
        f"MLflow run    {outcome.run_id} (experiment {resolved['mlflow']['experiment']!r}, "
        f"{resolved['mlflow']['tracking_uri']})"
    )
    print(f"look at it    {ui_command(resolved)}   (or: fefm-lab ui)")


def command_run(arguments: Sequence[str]) -> int:
    from fefm_lab.runner import store_for

    flags = [a for a in arguments if a.startswith("-")]
    overrides = [a for a in arguments if not a.startswith("-")]
    multirun = bool({"-m", "--multirun"} & set(flags))
    unknown = set(flags) - {"-m", "--multirun"}
    if unknown:
        raise ConfigError(
            f"fefm-lab run: unknown flag(s) {sorted(unknown)}; allowed: -m/--multirun"
        )

    if not multirun:
        resolved = resolved_config(overrides)
        store_for(resolved)  # database and experiment exist before the job starts
        outcome = _run_once(overrides)
        if outcome.status in ("finished", "already_finished"):
            _print_result(outcome, resolved)
            return 0
        if outcome.status == "skipped":
            print(f"not run: {outcome.reason}", file=sys.stderr)
            return 1
        if outcome.run_id is None:  # failed before its run was created (the data)
            print(f"error: {outcome.reason}", file=sys.stderr)
        else:
            print(f"run {outcome.run_id} FAILED: {outcome.reason}", file=sys.stderr)
        return 2 if outcome.user_error else 1

    from fefm_lab.sweep.launch import run_sweep

    return run_sweep(overrides)


# ---------------------------------------------------------------- other commands


def command_show(arguments: Sequence[str]) -> int:
    resolved = resolved_config(arguments)
    print(OmegaConf.to_yaml(resolved), end="")
    return 0


def command_prepare(arguments: Sequence[str]) -> int:
    from fefm_lab.data import prepare

    resolved = resolved_config(arguments)
    data = prepare(
        resolved["dataset"], seed=resolved["seed"], data_root=Path(resolved["paths"]["data_root"])
    )
    print(f"prepared dataset: {data.directory}")
    return 0


def command_synth(arguments: Sequence[str]) -> int:
    from fefm_lab.data import synthesize

    settings = resolved_config(arguments)["synth"]
    try:
        manifest = synthesize(
            settings["path"],
            format=settings["format"],
            rows=settings["rows"],
            seed=settings["seed"],
            click_rate=settings["click_rate"],
        )
    except (TypeError, ValueError) as error:
        raise ConfigError(f"synth: {error}") from None
    print(f"synthetic {settings['format']} data written: {settings['path']}")
    test_auc = manifest.get("teacher_auc", {}).get("test")
    if test_auc is not None:
        print(f"planted teacher's test AUC (what a model can hope to reach): {test_auc:.5f}")
    return 0


def command_report(arguments: Sequence[str]) -> int:
    from fefm_lab.report import write_report
    from fefm_lab.runner import store_for

    resolved = resolved_config(arguments)
    store = store_for(resolved)
    written = write_report(
        store,
        Path(resolved["paths"]["results_dir"]) / resolved["mlflow"]["experiment"],
        sweep=resolved["report"]["sweep"],
    )
    print(written.markdown)
    for path in written.files:
        print(f"wrote {path}")
    return 0


def command_ui(arguments: Sequence[str]) -> int:
    resolved = resolved_config(arguments)
    tracking = resolved["mlflow"]
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        tracking["tracking_uri"],
        "--host",
        "127.0.0.1",
        "--port",
        str(tracking["ui_port"]),
    ]
    print(f"MLflow UI on http://127.0.0.1:{tracking['ui_port']} (Ctrl-C stops it)", flush=True)
    sys.stderr.flush()
    # Replace this process: Ctrl-C and kill reach the server itself, no orphan is left behind.
    os.execv(sys.executable, command)
    return 0  # not reached


COMMANDS = {
    "run": command_run,
    "show": command_show,
    "prepare": command_prepare,
    "synth": command_synth,
    "report": command_report,
    "ui": command_ui,
}


# ---------------------------------------------------------------- help


def _first_comment(path: Path) -> str:
    for line in path.read_text().splitlines():
        text = line.strip()
        if text.startswith("#") and not text.startswith("# @package"):
            return text.lstrip("# ").strip()
    return ""


def groups_help() -> str:
    """Every config group with its options and each option's one-line description."""
    root = Path(config_dir())
    defaults = compose_config([], with_hydra=True).hydra.runtime.choices
    lines = ["Config groups (pick with group=option; the default is marked *):"]
    for group in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        lines.append(f"  {group.name}:")
        for option in sorted(group.glob("*.yaml")):
            mark = "*" if defaults.get(group.name) == option.stem else " "
            lines.append(f"   {mark} {option.stem:<26} {_first_comment(option)}")
    lines += [
        "Other keys: seed=INT, force=true (rerun finished configs), threads=INT,",
        "  mlflow.tracking_uri=URI, mlflow.experiment=NAME, paths.root_dir=DIR, any model.* /",
        "  trainer.* / dataset.* key (see `fefm-lab show`).",
    ]
    return "\n".join(lines)


def usage() -> str:
    commands = "\n".join(f"  {name:<8} {text}" for name, text in SUBCOMMANDS.items())
    return (
        "usage: fefm-lab COMMAND [overrides ...]\n\n"
        f"Commands:\n{commands}\n\n{groups_help()}\n\n"
        "Examples:\n"
        "  fefm-lab run                                   # DeepFEFM, embedded synthetic data\n"
        "  fefm-lab run model=fm trainer=adam seed=2\n"
        "  fefm-lab run -m ablation='glob(*)' seed=1,2,3  # a sweep; repeat it to resume\n"
        "  fefm-lab run -m experiment=synthetic_ablation hydra/launcher=joblib\n"
        "  fefm-lab report experiment=synthetic_ablation\n"
    )


def run_usage() -> str:
    return (
        "usage: fefm-lab run [-m] [overrides ...]\n\n"
        "Train one configuration (prints test AUC / log loss and the MLflow run), or with -m a\n"
        "Hydra multirun sweep: one MLflow parent run, one child per job; configurations already\n"
        "FINISHED (same config hash) are skipped unless force=true; failed runs are recorded and\n"
        "the sweep goes on. hydra/launcher=joblib runs 2 jobs at once.\n\n"
        f"{groups_help()}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fefm-lab` console script; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if arguments[0] in ("-V", "--version"):
        print(f"fefm-lab {fefm_lab.__version__}")
        return 0
    command, rest = arguments[0], arguments[1:]
    if command not in COMMANDS:
        print(
            f"error: unknown command {command!r}; allowed: {', '.join(COMMANDS)} "
            "(fefm-lab --help lists them)",
            file=sys.stderr,
        )
        return 2
    try:
        if "-h" in rest or "--help" in rest:
            print(run_usage() if command == "run" else usage())
            return 0
        return COMMANDS[command](rest)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
