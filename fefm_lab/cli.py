"""`fefm-lab`: the command line (run, sweep, prepare, synth, report, ui, show).

`run` composes the job's config once, validates and types it (a mistake exits 2 before any data
is read or any directory made), creates the MLflow database and experiment, and runs the job on
that config the way Hydra runs one (`fefm_lab.hydra_app.run_composed`). `run -m` is a sweep
(`fefm_lab.sweep`): it checks every job first, then Hydra's launcher composes each job where it
runs. The read-only subcommands use Hydra's compose API.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

import fefm_lab
from fefm_lab.config.ablation import ABLATIONS
from fefm_lab.config.compose import compose_config, config_dir, group_options, resolved_config
from fefm_lab.config.job_config import JobConfig
from fefm_lab.errors import ConfigError, UserError
from fefm_lab.training.signals import TrainingStopped
from fefm_lab.uris import masked_text, masked_uri

SUBCOMMANDS = {
    "run": "train one configuration, or a sweep with -m (Hydra multirun)",
    "prepare": "prepare (and cache) the configured dataset",
    "synth": "write a synthetic CTR data file",
    "report": "write the ablation report of an experiment under results/<experiment>/",
    "ui": "open the MLflow UI on 127.0.0.1 for the configured tracking store",
    "server": "start an MLflow tracking server for a team or a cluster (server.* settings)",
    "show": "print the composed configuration",
}
# `fefm-lab --help` wraps option descriptions to this width.
HELP_WIDTH = 100


# ---------------------------------------------------------------- run


def _run_once(overrides: Sequence[str]):
    """One job: composed once (with Hydra's node), its output directory checked, validated and
    typed once, run as Hydra runs a single job (Hydra's copy of the config is not read again).
    The job's config and outcome."""
    from fefm_lab.config.compose import job_of
    from fefm_lab.hydra_app import run_composed
    from fefm_lab.runner import run_job, tracking_store

    cfg = compose_config(overrides, with_hydra=True)
    _check_directory(cfg, "hydra.run.dir")
    job = job_of(cfg)
    tracking_store(job.mlflow)  # database and experiment exist before the job starts
    return job, run_composed(cfg, lambda _: run_job(job))


def _print_result(outcome, job: JobConfig) -> None:
    from fefm_lab.runner import ui_command

    def number(value: float | None) -> str:
        return "(not recorded)" if value is None else f"{value:.5f}"

    print(f"test AUC      {number(outcome.test_auc)}")
    print(f"test log loss {number(outcome.test_logloss)}")
    print(
        f"MLflow run    {outcome.run_id} (experiment {job.mlflow.experiment!r}, "
        f"{masked_uri(job.mlflow.tracking_uri)})"
    )
    print(f"look at it    {ui_command(job.mlflow)}")


def check_sweep_directory(overrides: Sequence[str]) -> None:
    """Refuse a sweep directory that cannot be created, naming its key (exit 2): Hydra would
    fail inside its launcher with a traceback and exit 1."""
    # the directory depends on hydra.* and paths.* only (a sweep's other overrides hold lists)
    relevant = [o for o in overrides if o.lstrip("+~").startswith(("hydra.", "paths."))]
    try:
        cfg = compose_config(relevant, with_hydra=True)
    except ConfigError:
        return  # swept, or resolved only at launch: Hydra and the config checks report it
    _check_directory(cfg, "hydra.sweep.dir")


def _check_directory(cfg: Any, key: str) -> None:
    """Refuse `key` of a composed config (a Hydra run or sweep directory) if it cannot be
    created, naming the key (exit 2). The nearest existing ancestor must take a new directory:
    one is made there and removed at once, so this also catches read-only mounts and pseudo
    file systems (`/proc`), where permission bits say yes.
    """
    try:
        directory = Path(str(OmegaConf.select(cfg, key)))
    except OmegaConfBaseException:
        return  # resolved only at launch: Hydra and the config checks report it
    ancestor = directory.absolute()
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{key}={directory}: cannot be created: {ancestor} is not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".fefm-lab-probe-", dir=ancestor))
    except OSError as error:
        raise ConfigError(
            f"{key}={directory}: cannot be created in {ancestor}: {error.strerror}"
        ) from None


def command_run(arguments: Sequence[str]) -> int:
    flags = [a for a in arguments if a.startswith("-")]
    overrides = [a for a in arguments if not a.startswith("-")]
    multirun = bool({"-m", "--multirun"} & set(flags))
    unknown = set(flags) - {"-m", "--multirun"}
    if unknown:
        raise ConfigError(
            f"fefm-lab run: unknown flag(s) {sorted(unknown)}; allowed: -m/--multirun"
        )

    if not multirun:
        job, outcome = _run_once(overrides)
        if outcome.status in ("finished", "already_finished"):
            _print_result(outcome, job)
            return 0
        if outcome.status == "skipped":
            print(f"not run: {outcome.reason} (recorded as run {outcome.run_id})", file=sys.stderr)
            return 1
        if outcome.run_id is None or outcome.status == "unreachable":
            # refused before a run was opened (data, checkpoint lock), or the tracking server
            # is away at the end (the reason says what is kept and what to do)
            print(f"error: {outcome.reason}", file=sys.stderr)
        else:
            print(f"run {outcome.run_id} FAILED: {outcome.reason}", file=sys.stderr)
        return outcome.exit_code or (2 if outcome.user_error else 1)

    from fefm_lab.sweep.launch import run_sweep

    check_sweep_directory(overrides)
    return run_sweep(overrides)


# ---------------------------------------------------------------- other commands


def command_show(arguments: Sequence[str]) -> int:
    resolved = resolved_config(arguments)
    print(masked_text(OmegaConf.to_yaml(resolved)), end="")
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
            teacher=settings["teacher"],
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
    from fefm_lab.report.settings import ReportSettings
    from fefm_lab.runner import store_for
    from fefm_lab.tracking.ui import tracking_has_experiment

    resolved = resolved_config(arguments)
    tracking = resolved["mlflow"]
    if not tracking_has_experiment(tracking["tracking_uri"], tracking["experiment"]):
        raise ConfigError(
            f"mlflow.experiment={tracking['experiment']}: no such experiment in "
            f"mlflow.tracking_uri={masked_uri(tracking['tracking_uri'])}"
        )
    store = store_for(resolved)
    written = write_report(
        store,
        Path(resolved["paths"]["results_dir"]) / resolved["mlflow"]["experiment"],
        sweep=resolved["report"]["sweep"],
        settings=ReportSettings.from_config(resolved["report"]),
    )
    print(written.markdown)
    for warning in written.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for path in written.files:
        print(f"wrote {path}")
    return 0


def command_ui(arguments: Sequence[str]) -> int:
    """`fefm-lab ui [sweep=NAME] [overrides]`: print the sweep's comparison link, serve the UI."""
    from fefm_lab.report.links import sweep_links
    from fefm_lab.runner import store_for
    from fefm_lab.tracking.ui import (
        bind_ui_socket,
        check_servable,
        latest_sweep,
        serve_ui,
        ui_base_url,
    )

    sweeps = [a.split("=", 1)[1] for a in arguments if a.startswith("sweep=")]
    resolved = resolved_config([a for a in arguments if not a.startswith("sweep=")])
    tracking = resolved["mlflow"]
    check_servable(tracking["tracking_uri"])
    port = int(tracking["ui_port"])
    store = store_for(resolved)
    sweep = sweeps[-1] if sweeps else latest_sweep(store)
    if sweeps and store.sweep_parent(sweep) is None:
        known = sorted({r.data.tags.get("sweep", "") for r in store.search("tags.role = 'sweep'")})
        raise ConfigError(
            f"sweep={sweep}: no such sweep in experiment {store.experiment_name!r} "
            f"({masked_uri(tracking['tracking_uri'])}); sweeps there: {', '.join(known) or 'none'}"
        )
    listener = bind_ui_socket(port)
    print(f"MLflow UI on {ui_base_url(port)} (Ctrl-C stops it)")
    for line in sweep_links(store, sweep, port) if sweep else []:
        print(line)
    sys.stdout.flush()
    stopped_by = serve_ui(tracking["tracking_uri"], listener)
    print(f"MLflow UI stopped ({stopped_by})")
    return 0


def command_server(arguments: Sequence[str]) -> int:
    from fefm_lab.tracking.server import serve

    serve(resolved_config(arguments)["server"])
    return 0  # not reached: the server replaces this process


COMMANDS = {
    "run": command_run,
    "server": command_server,
    "show": command_show,
    "prepare": command_prepare,
    "synth": command_synth,
    "report": command_report,
    "ui": command_ui,
}


# ---------------------------------------------------------------- help


def _first_comment(path: Path) -> str:
    """The first sentence of a YAML's leading comment, which may run over several lines (it
    ends at a full stop, an example line `#   fefm-lab ...`, an empty `#` or the comment's end).
    """
    words: list[str] = []
    for line in path.read_text().splitlines():
        text = line.strip()
        if text.startswith("# @package"):
            continue
        if not text.startswith("#") or text == "#" or line.startswith("#   "):
            break
        words.append(text.lstrip("#").strip())
    paragraph = " ".join(words)
    end = re.search(r"\.(\s|$)", paragraph)
    return paragraph[: end.start() + 1] if end else paragraph


def _option_doc(group: str, option: str) -> str:
    path = Path(config_dir()) / group / f"{option}.yaml"
    if path.is_file():
        return _first_comment(path)
    # options that live in the ConfigStore (the ablations) carry their doc in Python
    docs = {a.name: a.doc for a in ABLATIONS} if group == "ablation" else {}
    return docs.get(option, "")


def groups_help() -> str:
    """Every config group with its options and each option's one-line description."""
    root = Path(config_dir())
    defaults = compose_config([], with_hydra=True).hydra.runtime.choices
    # conf/hydra/ holds fefm-lab's versions of Hydra's own options (hydra/launcher=ray)
    groups = {
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith("_") and p.name != "hydra"
    }
    lines = ["Config groups (pick with group=option; the default is marked *):"]
    for group in sorted(groups | {"ablation"}):
        lines.append(f"  {group}:")
        for option in group_options(group):
            mark = "*" if defaults.get(group) == option else " "
            doc = textwrap.wrap(_option_doc(group, option), HELP_WIDTH - 32) or [""]
            lines.append(f"   {mark} {option:<26} {doc[0]}")
            lines += [" " * 32 + more for more in doc[1:]]
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
    except TrainingStopped as stopped:  # SIGTERM / SIGINT: the run is KILLED, its checkpoint kept
        print(f"stopped: {stopped.reason}; the same command continues it", file=sys.stderr)
        return stopped.exit_code


if __name__ == "__main__":
    sys.exit(main())
