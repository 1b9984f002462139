"""One job, end to end: prepare data, build, train, track in MLflow.

A job runs on its composed, validated and typed config (`fefm_lab.config.job_config.JobConfig`,
built once per job by its caller) and hands its typed parts down; the run's name and tags are
`fefm_lab.tracking.naming`'s, and its record (parameters, `config.yaml`, config hash) is the
config's resolved values.

`run_job(job)` is what `fefm-lab run` calls once per Hydra job (single run or sweep member). It
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
from typing import Any, TypeVar

from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf

from fefm_lab.config.job_config import JobConfig
from fefm_lab.config.schema import MlflowConfig
from fefm_lab.data.shared import dataset_for_job
from fefm_lab.errors import UserError
from fefm_lab.tracking.confighash import run_identity
from fefm_lab.tracking.liveness import keep_alive
from fefm_lab.tracking.naming import configuration_tags, run_name, run_tags
from fefm_lab.tracking.outbox import (
    END_RETRIES,
    END_TIMEOUT_S,
    Outbox,
    TrackingUnreachable,
    is_unreachable,
    quick_requests,
    why_unreachable,
)
from fefm_lab.tracking.resume import (
    Continuation,
    backfill_epochs,
    find_continuation,
    reopen_run,
    stale_checkpoints,
)
from fefm_lab.tracking.run_logging import (
    TAG_DEVICE,
    log_epoch,
    log_metrics,
    log_params,
    log_step,
    log_text,
)
from fefm_lab.tracking.store import (
    TAG_OUTCOME,
    TAG_REASON,
    TAG_TRIAL,
    TAG_TUNED,
    TrackingStore,
    open_store,
    tag_value,
)
from fefm_lab.tracking.ui import ui_base_url
from fefm_lab.training.checkpoint import (
    CheckpointDirectory,
    CheckpointInUse,
    CheckpointNotWritable,
)
from fefm_lab.training.signals import StopSignals
from fefm_lab.tuning.trial import TAG_PRUNED_AT, TAG_STUDY, trial_reporter
from fefm_lab.uris import masked_uri

T = TypeVar("T")


# ---------------------------------------------------------------- the job


@dataclass
class JobOutcome:
    """How one job ended. status: finished | skipped | failed | killed | already_finished |
    unreachable (the tracking server is down at the end: the same command finishes it later)."""

    status: str
    config_hash: str
    name: str
    run_id: str | None = None
    test_auc: float | None = None
    test_logloss: float | None = None
    reason: str = ""
    user_error: bool = False
    # the exit code `fefm-lab run` ends with when it is not 0, 1 or 2 (75: tracking server
    # unreachable at the end; the checkpoint and the waiting records are kept)
    exit_code: int | None = None
    # validation at the best epoch (what a tuning study is told; never the test split) and,
    # for a tuning trial its study pruned, the epoch it stopped after
    best_val_auc: float | None = None
    best_val_logloss: float | None = None
    pruned_at_epoch: int | None = None
    # A job that did not finish: its one line (the job's name or run id and the reason). Not
    # printed here: `fefm-lab run` prints its own error line with the reason (once), a sweep
    # job prints this line (`fefm_lab.sweep.job`).
    message: str = ""


def tracking_store(tracking: MlflowConfig) -> TrackingStore:
    """The tracking store and experiment of `mlflow` settings (created if new)."""
    return open_store(tracking.tracking_uri, tracking.experiment, tracking.artifact_location)


def store_for(resolved: Mapping[str, Any]) -> TrackingStore:
    """`tracking_store` of a resolved config's `mlflow` section (the commands' side)."""
    return tracking_store(MlflowConfig(**resolved["mlflow"]))


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


def prepare_data(job: JobConfig):
    """The prepared dataset of the run (built once, then reused from its fingerprint)."""
    data = dataset_for_job(  # in a sweep: the one its launching process prepared
        job.dataset,
        seed=job.seed,
        data_root=job.paths.data_root,
        sweep=job.sweep,
        # the passes over a raw file can take many minutes: shown as training's progress is
        progress=job.trainer.verbose,
    )
    data.check_trainable()  # a split with no rows or one class is named here, not "diverged"
    return data


def run_job(job: JobConfig) -> JobOutcome:
    """Run one configuration and record it in MLflow (see the module docstring).

    The data is prepared first: its content fingerprint is part of the config hash. Runs of
    this configuration whose process is gone are reaped (KILLED) before looking for a finished
    one. Data that cannot be prepared makes no run: the outcome says why.
    """
    name = run_name(job)
    store = tracking_store(job.mlflow)
    client = store.client

    try:
        data = prepare_data(job)
    except Exception as error:  # returned, not raised: a sweep goes on
        user_error = isinstance(error, UserError)
        reason = str(error) if user_error else f"{type(error).__name__}: {error}"
        if not user_error:
            traceback.print_exc()
        message = f"{name}: data not prepared: {reason}"
        return JobOutcome("failed", "", name, reason=reason, user_error=user_error, message=message)
    identity = run_identity(job.values, data.manifest)
    digest = identity.config_hash
    # by the configuration's tags, not its hash: a run killed before an upgrade is reaped too
    for reaped_id, why in store.reap_dead_runs(tags=configuration_tags(job)):
        _say(f"run {reaped_id} of this configuration marked KILLED: {why}")
    stale = stale_checkpoints(store, job.paths.checkpoint_dir, identity.code_version)
    if stale is not None:
        _say(stale.describe())

    if not job.force:
        previous = store.finished_run_with_hash(digest)
        if previous is not None:
            run_id, tags = previous.info.run_id, previous.data.tags
            if tags.get(TAG_OUTCOME) == "skipped":
                reason = tags.get(TAG_REASON, "")
                message = f"skipped {name}: {reason} (as in run {run_id})"
                return JobOutcome("skipped", digest, name, run_id, reason=reason, message=message)
            metrics = previous.data.metrics
            _say(
                f"skipping {name}: already FINISHED as run {run_id} "
                f"(config hash {digest}); force=true reruns it"
            )
            pruned_at = tags.get(TAG_PRUNED_AT)
            if job.tune.settings:  # reused as a run of the tuned settings (the best trial's run)
                client.set_tag(run_id, TAG_TUNED, tag_value(str(job.tune.settings)))
            return JobOutcome(
                "already_finished",
                digest,
                name,
                run_id,
                metrics.get("test_auc"),
                metrics.get("test_logloss"),
                best_val_auc=metrics.get("best_val_auc"),
                best_val_logloss=metrics.get("best_val_logloss"),
                pruned_at_epoch=int(pruned_at) if pruned_at else None,
            )

    try:
        continuation = find_continuation(store, job.paths.checkpoint_dir, digest)
    except (CheckpointInUse, CheckpointNotWritable) as busy:
        message = f"not running {name}: {busy}"
        return JobOutcome(
            "failed", digest, name, reason=str(busy), user_error=True, message=message
        )
    checkpoints = continuation.checkpoints
    keep_checkpoints = job.trainer.keep_checkpoints
    # metric and tag writes during training: retried and kept beside the checkpoint while the
    # tracking server is away; a previous start's waiting records are delivered first
    outbox = Outbox(client, store.tracking_uri, checkpoints.directory, say=_say)
    run_id = None
    with StopSignals() as stop:
        try:
            if not outbox.flush(now=True):
                raise outbox.unreachable("the previous start's records cannot be delivered")
            if continuation.run is not None:
                run_id = continuation.run_id
                reopen_run(client, continuation.run, continuation.state)
                _say(
                    f"resuming run {run_id} ({name}) from its checkpoint at "
                    f"{continuation.state.describe()}"
                )
            else:
                run = client.create_run(
                    store.experiment_id, run_name=name, tags=run_tags(job, identity)
                )
                run_id = run.info.run_id
            tune = job.tune
            if tune.trial is not None:  # also on a resumed run: the trial that runs it
                client.set_tag(run_id, TAG_TRIAL, str(tune.trial))
                client.set_tag(run_id, TAG_STUDY, tag_value(str(tune.study)))
            if tune.settings:
                client.set_tag(run_id, TAG_TUNED, tag_value(str(tune.settings)))
            with keep_alive(client, run_id):
                if continuation.run is None:
                    log_params(client, run_id, job.values)
                    log_text(client, run_id, OmegaConf.to_yaml(job.record()), "config.yaml")
                outcome = _train_and_log(
                    job, data, client, run_id, digest, name, continuation, stop, outbox
                )
            _recorded_or_unreachable(lambda: client.set_terminated(run_id, "FINISHED"), outbox)
        except TrackingUnreachable as unreachable:  # nothing lost: the next start finishes it
            checkpoints.unlock()
            return JobOutcome(
                "unreachable",
                digest,
                name,
                run_id,
                reason=str(unreachable),
                exit_code=unreachable.exit_code,
                message=f"run {run_id} not finished: {unreachable}",
            )
        except KeyboardInterrupt as interrupt:  # Ctrl-C, or a stop signal (TrainingStopped)
            checkpoints.unlock()
            if run_id is None:
                raise
            reason = getattr(interrupt, "reason", "interrupted (Ctrl-C)")
            store.end_run(run_id, "killed", reason)
            # the reason is the caller's to print (the CLI says it once, with how to continue)
            _say(f"run {run_id} marked KILLED in MLflow")
            raise
        except Exception as error:  # recorded, not raised: a sweep goes on
            reason = f"{type(error).__name__}: {error}"
            _finish_checkpoints(checkpoints, keep_checkpoints)
            if run_id is None:
                raise
            log_text(client, run_id, traceback.format_exc(), "traceback.txt")
            store.end_run(run_id, "failed", reason)
            return JobOutcome(
                "failed",
                digest,
                name,
                run_id,
                reason=reason,
                user_error=isinstance(error, UserError),
                message=f"run {run_id} FAILED: {reason}",
            )
        _finish_checkpoints(checkpoints, keep_checkpoints)
    return outcome


def _finish_checkpoints(checkpoints: CheckpointDirectory, keep: bool) -> None:
    """A run that ended (FINISHED or FAILED) is never continued: free its checkpoint."""
    if keep:
        checkpoints.unlock()
    else:
        checkpoints.delete()


def _build_model(job: JobConfig, data) -> Any:
    from fefm_lab.model import build_model

    model = job.model
    # LR has no embeddings; its columns still carry a (unused) size
    embedding_dim = model.embedding_dim if model.embedding_dim is not None else 1
    linear_columns, dnn_columns = data.feature_columns(embedding_dim)
    return build_model(
        model.name, linear_columns, dnn_columns, seed=job.model_seed, **model.parameters
    )


def _train_and_log(
    job: JobConfig,
    data,
    client,
    run_id: str,
    digest: str,
    name: str,
    continuation: Continuation,
    stop: StopSignals,
    outbox: Outbox,
) -> JobOutcome:
    from fefm_lab.training.device import import_tensorflow, select_device

    import_tensorflow(verbose=job.verbose)
    import keras

    from fefm_lab.kernels import ISA_TAG, run_instruction_set
    from fefm_lab.kernels.fefm_interaction import describe_path, kernel_instruction_set
    from fefm_lab.layers import FEFMInteraction
    from fefm_lab.training import fit_and_evaluate
    from fefm_lab.training.optimizer import describe_path as describe_optimizer_path
    from fefm_lab.training.optimizer import uses_kernel

    trainer = job.trainer
    configure_threads(job.threads)
    device = select_device(trainer.device)
    client.set_tag(run_id, TAG_DEVICE, device)
    keras.backend.clear_session()  # joblib workers are reused across jobs
    feature_map = Path(data.directory) / "feature_map.json"
    if feature_map.is_file():
        client.log_artifact(run_id, str(feature_map))
    try:
        model = _build_model(job, data)
    except ValueError as refused:
        reason = f"invalid model configuration: {refused}"
        client.set_tag(run_id, TAG_OUTCOME, "skipped")
        client.set_tag(run_id, TAG_REASON, tag_value(reason))
        message = f"skipped {name}: {reason}"
        return JobOutcome("skipped", digest, name, run_id, reason=reason, message=message)

    # which path computes the run (compiled kernel or TensorFlow ops): said once, and tagged
    paths = {"optimizer_path": describe_optimizer_path(trainer.optimizer, device)}
    fefm_isa = None
    if any(isinstance(layer, FEFMInteraction) for layer in model.layers):
        paths["fefm_path"] = describe_path(trainer.jit_compile, on_gpu=device != "CPU")
        fefm_isa = kernel_instruction_set(trainer.jit_compile, on_gpu=device != "CPU")
    for tag in sorted(paths):
        _say(paths[tag])
        client.set_tag(run_id, tag, tag_value(paths[tag]))
    client.set_tag(run_id, ISA_TAG, run_instruction_set(fefm_isa, uses_kernel(device)))
    reporter = trial_reporter(job.tune, trainer.max_epochs)
    if continuation.state is not None:
        backfill_epochs(client, run_id, continuation.state.position.history)
        if reporter is not None:
            reporter.catch_up(continuation.state.position.history)

    def on_epoch_end(epoch: int, record: dict[str, float]) -> bool:
        log_epoch(outbox, run_id, epoch, record)
        return reporter is not None and reporter(epoch, record)

    result = fit_and_evaluate(
        model,
        data,
        trainer,
        seed=job.model_seed,
        on_epoch_end=on_epoch_end,
        on_steps=lambda step, values: log_step(outbox, run_id, step, values),
        checkpoints=continuation.checkpoints,
        run_id=run_id,
        resume=continuation.state,
        stop=stop,
    )
    # the epochs' records first, in order; the end (test metrics, model, status) only with a
    # server that takes them: else the next start recomputes it from the kept checkpoint
    if not outbox.flush(now=True):
        raise outbox.unreachable("training ended")
    return _recorded_or_unreachable(
        lambda: _finish_run(client, run_id, digest, name, result, reporter, outbox),
        outbox,
    )


def _recorded_or_unreachable(record: Callable[[], T], outbox: Outbox) -> T:
    """`record()` with a few quick retries; a server gone meanwhile is TrackingUnreachable."""
    try:
        with quick_requests(retries=END_RETRIES, timeout_s=END_TIMEOUT_S):
            return record()
    except MlflowException as error:
        if not is_unreachable(error):
            raise
        why = why_unreachable(error)
        raise outbox.unreachable(f"the run's end could not be recorded ({why})") from None


def _finish_run(client, run_id, digest, name, result, reporter, outbox) -> JobOutcome:
    """Test metrics, the model and curve artifacts, the outcome tag of a trained run."""
    from fefm_lab.tracking.training_curves import plot_training_curves

    log_metrics(
        outbox,
        run_id,
        {
            "test_auc": result.test_auc,
            "test_logloss": result.test_logloss,
            "best_val_auc": result.best_val_auc,
            "best_val_logloss": result.best_val_logloss,
            "best_epoch": result.best_epoch,
            # 1: early stopping ended the run; 0: trainer.max_epochs did (maybe undertrained)
            "stopped_early": float(result.stopped_early),
            "num_params": result.num_params,
            "train_seconds": result.train_seconds,
            "samples_per_second": result.samples_per_second,
            "checkpoint_seconds": result.checkpoint_seconds,
            # CPU time of training and testing, all threads, over every start of a resumed run
            # (up to each start's last checkpoint); what the adaptive-seeds sweeper counts
            "cpu_seconds": result.cpu_seconds,
        },
        step=result.best_epoch,
    )
    if not outbox.flush(now=True):
        raise outbox.unreachable("the run's test metrics could not be recorded")
    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder) / "model.keras"
        result.model.save(model_path)
        client.log_artifact(run_id, str(model_path), "model")
        curve = plot_training_curves(result.history, Path(folder) / "training_curve.png", name)
        client.log_artifact(run_id, str(curve))
    pruned_at = reporter.pruned_at if reporter is not None else None
    if pruned_at is not None:  # ended by its study, not failed: its own outcome
        client.set_tag(run_id, TAG_PRUNED_AT, str(pruned_at))
        client.set_tag(run_id, TAG_REASON, f"pruned by the tuning study after epoch {pruned_at}")
    client.set_tag(run_id, TAG_OUTCOME, "pruned" if pruned_at is not None else "finished")
    return JobOutcome(
        "finished",
        digest,
        name,
        run_id,
        result.test_auc,
        result.test_logloss,
        best_val_auc=result.best_val_auc,
        best_val_logloss=result.best_val_logloss,
        pruned_at_epoch=pruned_at,
    )


def ui_command(tracking: MlflowConfig) -> str:
    """The `fefm-lab ui` command that opens the MLflow UI on this run's store and experiment."""
    return (
        f"fefm-lab ui mlflow.tracking_uri={masked_uri(tracking.tracking_uri)} "
        f"mlflow.experiment={tracking.experiment}   "
        f"(serves {ui_base_url(tracking.ui_port)})"
    )
