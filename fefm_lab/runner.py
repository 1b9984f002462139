"""One run, end to end: validate the config, prepare data, build, train, track in MLflow.

`run_job(cfg)` is what `fefm-lab run` calls once per Hydra job (single run or sweep member). It
never lets a training failure escape: the run is recorded FAILED (or skipped, for a model flag
combination the builder refuses) with the reason, and the outcome is returned. Ctrl-C marks the
run KILLED and propagates.
"""

from __future__ import annotations

import sys
import tempfile
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

import fefm_lab
from fefm_lab.errors import ConfigError, UserError
from fefm_lab.tracking.confighash import config_hash, current_code_version, data_fingerprint
from fefm_lab.tracking.liveness import keep_alive, liveness_tags
from fefm_lab.tracking.run_logging import (
    git_commit,
    log_epoch,
    log_metrics,
    log_params,
    log_text,
)
from fefm_lab.tracking.store import (
    ROLE_JOB,
    TAG_CODE_VERSION,
    TAG_CONFIG_HASH,
    TAG_DATA_FINGERPRINT,
    TAG_OUTCOME,
    TAG_PARENT,
    TAG_REASON,
    TAG_ROLE,
    TAG_SWEEP,
    TrackingStore,
    open_store,
)

MODEL_NAMES = ("deepfefm", "fefm", "fmfm", "fm", "fwfm", "deepfm", "lr")
# Model config keys that are not build_model parameters.
MODEL_CONFIG_ONLY = ("name", "embedding_dim")
# (flag, value that ablates, name): the DeepFEFM flags an ablation label is read from.
ABLATION_FLAGS = (
    ("use_fefm", False, "no_fefm_logit"),
    ("use_linear", False, "no_linear"),
    ("exclude_feature_embed_in_dnn", True, "no_feature_embed_in_dnn"),
    ("use_fefm_embed_in_dnn", False, "no_fefm_embed_in_dnn"),
    ("symmetric", False, "asymmetric"),
)
DNN_INPUT_FLAGS = ("no_feature_embed_in_dnn", "no_fefm_embed_in_dnn")
_SHALLOW_KEYS = ("fm_group", "use_linear", "l2_reg_linear", "l2_reg_embedding_feat")
_DNN_KEYS = ("dnn_hidden_units", "dnn_activation", "dnn_dropout", "dnn_use_bn", "l2_reg_dnn")
_COMMON_KEYS = ("task", "l2_mode")
# build_model's parameters per model (besides `seed`, which comes from the top-level seed);
# kept here so validating a config does not import TensorFlow (a test checks they agree).
MODEL_PARAMETERS: dict[str, tuple[str, ...]] = {
    "deepfefm": (
        *_SHALLOW_KEYS,
        *_DNN_KEYS,
        *_COMMON_KEYS,
        "l2_reg_embedding_field",
        "use_fefm",
        "exclude_feature_embed_in_dnn",
        "use_fefm_embed_in_dnn",
        "symmetric",
    ),
    "fefm": (*_SHALLOW_KEYS, *_COMMON_KEYS, "l2_reg_embedding_field", "symmetric"),
    "fmfm": (*_SHALLOW_KEYS, *_COMMON_KEYS, "l2_reg_embedding_field"),
    "fm": (*_SHALLOW_KEYS, *_COMMON_KEYS),
    "fwfm": (*_SHALLOW_KEYS, *_COMMON_KEYS, "l2_reg_embedding_field"),
    "deepfm": (*_SHALLOW_KEYS, *_DNN_KEYS, *_COMMON_KEYS),
    "lr": ("l2_reg_linear", *_COMMON_KEYS),
}


# ---------------------------------------------------------------- validation


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check(ok: bool, key: str, expected: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")


def _int_at_least(minimum: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: _is_int(v) and v >= minimum), f"an integer >= {minimum}"


_BOOL = (lambda v: isinstance(v, bool)), "true or false"
_NON_NEGATIVE = (lambda v: _is_number(v) and v >= 0), "a number >= 0"
_POSITIVE = (lambda v: _is_number(v) and v > 0), "a number > 0"
_TEXT = (lambda v: isinstance(v, str) and v != ""), "a non-empty string"

MODEL_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "name": ((lambda v: v in MODEL_NAMES), "one of " + ", ".join(MODEL_NAMES)),
    "embedding_dim": _int_at_least(1),
    "fm_group": (
        lambda v: isinstance(v, list) and v != [] and all(isinstance(g, str) for g in v),
        "a non-empty list of feature-group names",
    ),
    "dnn_hidden_units": (
        lambda v: isinstance(v, list) and all(_is_int(u) and u >= 1 for u in v),
        "a list of layer widths >= 1 ([] = no DNN)",
    ),
    "dnn_activation": _TEXT,
    "dnn_dropout": ((lambda v: _is_number(v) and 0 <= v < 1), "a number in [0, 1)"),
    "dnn_use_bn": _BOOL,
    "l2_reg_linear": _NON_NEGATIVE,
    "l2_reg_embedding_feat": _NON_NEGATIVE,
    "l2_reg_embedding_field": _NON_NEGATIVE,
    "l2_reg_dnn": _NON_NEGATIVE,
    "l2_mode": ((lambda v: v in ("batch", "table")), "'batch' or 'table'"),
    "use_fefm": _BOOL,
    "use_linear": _BOOL,
    "exclude_feature_embed_in_dnn": _BOOL,
    "use_fefm_embed_in_dnn": _BOOL,
    "symmetric": _BOOL,
    # The trainer fits 0/1 click labels with log loss; regression is a Python-API-only model option.
    "task": ((lambda v: v == "binary"), "'binary' (click labels; regression: Python API only)"),
}

TRAINER_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "optimizer": ((lambda v: v in ("adagrad", "adam")), "'adagrad' or 'adam'"),
    "learning_rate": _POSITIVE,
    "batch_size": _int_at_least(1),
    "eval_batch_size": _int_at_least(1),
    "max_epochs": _int_at_least(1),
    "steps_per_epoch": (
        (lambda v: v is None or (_is_int(v) and v >= 1)),
        "null or an integer >= 1",
    ),
    "jit_compile": _BOOL,
    "verbose": _BOOL,
}

EARLY_STOPPING_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "min_delta": _NON_NEGATIVE,
    "patience": _int_at_least(0),
    "restore_best": _BOOL,
}

TOP_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": _int_at_least(0),
    "force": _BOOL,
    "threads": ((lambda v: v is None or (_is_int(v) and v >= 1)), "null or an integer >= 1"),
}


def _check_section(
    values: Mapping[str, Any], rules: Mapping[str, tuple[Callable[[Any], bool], str]], prefix: str
) -> None:
    for key, value in values.items():
        if key not in rules:
            raise ConfigError(f"{prefix}{key}: unknown key; allowed: {', '.join(rules)}")
        accepts, expected = rules[key]
        _check(accepts(value), f"{prefix}{key}", expected, value)


def validate_config(resolved: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the key and what is allowed; reads no data."""
    for key, (accepts, expected) in TOP_RULES.items():
        _check(accepts(resolved.get(key)), key, expected, resolved.get(key))
    model = resolved.get("model") or {}
    _check(isinstance(model, Mapping) and "name" in model, "model", "a model config", model)
    _check(model["name"] in MODEL_NAMES, "model.name", MODEL_RULES["name"][1], model["name"])
    _check_section(model, MODEL_RULES, "model.")
    allowed = MODEL_PARAMETERS[model["name"]]
    for key in model:
        if key not in MODEL_CONFIG_ONLY and key not in allowed:
            raise ConfigError(
                f"model.{key}: not a parameter of model {model['name']!r}; "
                f"it takes {', '.join(allowed)} (and embedding_dim)"
            )
    trainer = dict(resolved.get("trainer") or {})
    stopping = trainer.pop("early_stopping", None) or {}
    _check_section(trainer, TRAINER_RULES, "trainer.")
    _check_section(stopping, EARLY_STOPPING_RULES, "trainer.early_stopping.")
    trainer_config(resolved)  # the dataclass's own range checks
    tracking = resolved.get("mlflow") or {}
    for key in ("tracking_uri", "experiment"):
        _check(_TEXT[0](tracking.get(key)), f"mlflow.{key}", _TEXT[1], tracking.get(key))
    port = tracking.get("ui_port", 5000)
    _check(_is_int(port) and 1 <= port <= 65535, "mlflow.ui_port", "a port 1..65535", port)

    from fefm_lab.data import validate_dataset_config

    validate_dataset_config(resolved["dataset"])


def trainer_config(resolved: Mapping[str, Any]):
    """`TrainerConfig` of the run; its ValueErrors become ConfigErrors."""
    from fefm_lab.training.config import TrainerConfig

    try:
        return TrainerConfig.from_mapping(dict(resolved["trainer"]))
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from None


# ---------------------------------------------------------------- naming


def ablation_label(resolved: Mapping[str, Any]) -> str:
    """The ablation a DeepFEFM run actually is, read from its flags ('none', 'no_linear', ...).

    Reading the flags (not the `ablation` group choice) names grid-sweep runs correctly too:
    `model.use_linear=false` is 'no_linear' whichever way it was set. Without a DNN, the DNN-input
    flags mean nothing and the run is 'shallow'. Other models keep the group's name.
    """
    model = resolved["model"]
    if model.get("name") != "deepfefm":
        return str(resolved.get("ablation", "none"))
    shallow = model.get("dnn_hidden_units") == []
    names = [
        name
        for flag, ablated, name in ABLATION_FLAGS
        if model.get(flag) is ablated and not (shallow and name in DNN_INPUT_FLAGS)
    ]
    if shallow:
        names.insert(0, "shallow")
    return "+".join(names) or "none"


def dataset_name(resolved: Mapping[str, Any]) -> str:
    dataset = resolved.get("dataset") or {}
    return str(dataset.get("name") or dataset.get("format") or "unknown")


@dataclass(frozen=True)
class RunIdentity:
    """What makes two runs "the same configuration" (see `fefm_lab.tracking.confighash`)."""

    config_hash: str
    data_fingerprint: str
    code_version: str


def run_identity(resolved: Mapping[str, Any], manifest: Mapping[str, Any]) -> RunIdentity:
    """The identity of a run of `resolved` on the prepared data whose manifest is given."""
    data = data_fingerprint(manifest)
    code = current_code_version()
    return RunIdentity(config_hash(resolved, data_fingerprint=data, code_version=code), data, code)


def run_tags(resolved: Mapping[str, Any], identity: RunIdentity) -> dict[str, str]:
    """Tags a job run carries: what it is, where it comes from, which sweep it belongs to, and
    which process runs it (host, pid, heartbeat: see `fefm_lab.tracking.liveness`)."""
    tags = {
        "model": str(resolved["model"]["name"]),
        "ablation": ablation_label(resolved),
        "dataset": dataset_name(resolved),
        "seed": str(resolved["seed"]),
        TAG_SWEEP: str(resolved.get("sweep", {}).get("name") or "none"),
        TAG_CONFIG_HASH: identity.config_hash,
        TAG_DATA_FINGERPRINT: identity.data_fingerprint,
        TAG_CODE_VERSION: identity.code_version,
        "git_commit": git_commit(),
        "fefm_lab_version": fefm_lab.__version__,
        TAG_ROLE: ROLE_JOB,
        **liveness_tags(),
    }
    parent = resolved.get("sweep", {}).get("parent_run_id")
    if parent:
        tags[TAG_PARENT] = str(parent)
    return tags


def run_name(resolved: Mapping[str, Any]) -> str:
    return (
        f"{resolved['model']['name']} {ablation_label(resolved)} "
        f"{dataset_name(resolved)} seed={resolved['seed']}"
    )


# ---------------------------------------------------------------- the job


@dataclass
class JobOutcome:
    """How one job ended. status: finished | skipped | failed | killed | already_finished."""

    status: str
    config_hash: str
    name: str
    run_id: str | None = None
    test_auc: float | None = None
    test_logloss: float | None = None
    reason: str = ""
    user_error: bool = False


def resolve(cfg: DictConfig) -> dict[str, Any]:
    """The plain, fully interpolated config (without Hydra's own node)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("hydra", None)
    return resolved


def store_for(resolved: Mapping[str, Any]) -> TrackingStore:
    tracking = resolved["mlflow"]
    return open_store(
        tracking["tracking_uri"], tracking["experiment"], tracking.get("artifact_location")
    )


def configure_threads(threads: int | None) -> None:
    """Cap TensorFlow's thread pools (possible only before TensorFlow's runtime starts)."""
    if threads is None:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # runtime already initialised in this (reused) worker: keeps its first setting


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare_data(resolved: Mapping[str, Any]):
    """The prepared dataset of the run (built once, then reused from its fingerprint)."""
    from fefm_lab.data import prepare

    return prepare(
        resolved["dataset"],
        seed=resolved["seed"],
        data_root=Path(resolved["paths"]["data_root"]),
        progress=False,
    )


def run_job(cfg: DictConfig) -> JobOutcome:
    """Run one configuration and record it in MLflow (see the module docstring).

    The data is prepared first: its content fingerprint is part of the config hash. Runs of
    this configuration whose process is gone are reaped (KILLED) before looking for a finished
    one. Data that cannot be prepared makes no run: the outcome says why.
    """
    resolved = resolve(cfg)
    validate_config(resolved)
    name = run_name(resolved)
    store = store_for(resolved)
    client = store.client

    try:
        data = prepare_data(resolved)
    except Exception as error:  # returned, not raised: a sweep goes on
        user_error = isinstance(error, UserError)
        reason = str(error) if user_error else f"{type(error).__name__}: {error}"
        if not user_error:
            traceback.print_exc()
        _say(f"{name}: data not prepared: {reason}")
        return JobOutcome("failed", "", name, reason=reason, user_error=user_error)
    identity = run_identity(resolved, data.manifest)
    digest = identity.config_hash
    for reaped_id, why in store.reap_dead_runs(config_hash=digest):
        _say(f"run {reaped_id} of this configuration marked KILLED: {why}")

    if not resolved["force"]:
        previous = store.finished_run_with_hash(digest)
        if previous is not None:
            run_id, tags = previous.info.run_id, previous.data.tags
            if tags.get(TAG_OUTCOME) == "skipped":
                reason = tags.get(TAG_REASON, "")
                _say(f"skipped {name}: {reason} (as in run {run_id})")
                return JobOutcome("skipped", digest, name, run_id, reason=reason)
            metrics = previous.data.metrics
            _say(
                f"skipping {name}: already FINISHED as run {run_id} "
                f"(config hash {digest}); force=true reruns it"
            )
            return JobOutcome(
                "already_finished",
                digest,
                name,
                run_id,
                metrics.get("test_auc"),
                metrics.get("test_logloss"),
            )

    run = client.create_run(store.experiment_id, run_name=name, tags=run_tags(resolved, identity))
    run_id = run.info.run_id
    try:
        with keep_alive(client, run_id):
            log_params(client, run_id, resolved)
            log_text(client, run_id, OmegaConf.to_yaml(resolved), "config.yaml")
            outcome = _train_and_log(resolved, data, client, run_id, digest, name)
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or a stop signal (TrainingStopped)
        client.set_tag(run_id, TAG_OUTCOME, "killed")
        client.set_tag(run_id, TAG_REASON, getattr(interrupt, "reason", "interrupted (Ctrl-C)"))
        client.set_terminated(run_id, "KILLED")
        raise
    except Exception as error:  # recorded, not raised: a sweep goes on
        reason = f"{type(error).__name__}: {error}"
        client.set_tag(run_id, TAG_OUTCOME, "failed")
        client.set_tag(run_id, TAG_REASON, reason[:5000])
        log_text(client, run_id, traceback.format_exc(), "traceback.txt")
        client.set_terminated(run_id, "FAILED")
        _say(f"run {run_id} FAILED: {reason}")
        return JobOutcome(
            "failed", digest, name, run_id, reason=reason, user_error=isinstance(error, UserError)
        )
    client.set_terminated(run_id, "FINISHED")
    return outcome


def _build_model(resolved: Mapping[str, Any], data) -> Any:
    from fefm_lab.model import build_model

    model_cfg = dict(resolved["model"])
    linear_columns, dnn_columns = data.feature_columns(model_cfg["embedding_dim"])
    params = {k: v for k, v in model_cfg.items() if k not in MODEL_CONFIG_ONLY}
    return build_model(
        model_cfg["name"], linear_columns, dnn_columns, seed=resolved["seed"], **params
    )


def _train_and_log(
    resolved: Mapping[str, Any], data, client, run_id: str, digest: str, name: str
) -> JobOutcome:
    import keras

    from fefm_lab.tracking.curves import plot_training_curves
    from fefm_lab.training import fit_and_evaluate

    configure_threads(resolved.get("threads"))
    keras.backend.clear_session()  # joblib workers are reused across jobs
    feature_map = Path(data.directory) / "feature_map.json"
    if feature_map.is_file():
        client.log_artifact(run_id, str(feature_map))
    try:
        model = _build_model(resolved, data)
    except ValueError as refused:
        reason = f"invalid model configuration: {refused}"
        client.set_tag(run_id, TAG_OUTCOME, "skipped")
        client.set_tag(run_id, TAG_REASON, reason[:5000])
        _say(f"skipped {name}: {reason}")
        return JobOutcome("skipped", digest, name, run_id, reason=reason)

    result = fit_and_evaluate(
        model,
        data,
        trainer_config(resolved),
        seed=resolved["seed"],
        on_epoch_end=lambda epoch, record: log_epoch(client, run_id, epoch, record),
    )
    log_metrics(
        client,
        run_id,
        {
            "test_auc": result.test_auc,
            "test_logloss": result.test_logloss,
            "best_val_auc": result.best_val_auc,
            "best_val_logloss": result.best_val_logloss,
            "best_epoch": result.best_epoch,
            "num_params": result.num_params,
            "train_seconds": result.train_seconds,
            "samples_per_second": result.samples_per_second,
        },
        step=result.best_epoch,
    )
    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder) / "model.keras"
        result.model.save(model_path)
        client.log_artifact(run_id, str(model_path), "model")
        curve = plot_training_curves(result.history, Path(folder) / "training_curve.png", name)
        client.log_artifact(run_id, str(curve))
    client.set_tag(run_id, TAG_OUTCOME, "finished")
    return JobOutcome("finished", digest, name, run_id, result.test_auc, result.test_logloss)


def ui_command(resolved: Mapping[str, Any]) -> str:
    """The shell command that opens the MLflow UI on this config's tracking store."""
    tracking = resolved["mlflow"]
    return (
        f"mlflow ui --backend-store-uri {tracking['tracking_uri']} "
        f"--host 127.0.0.1 --port {tracking.get('ui_port', 5000)}"
    )
