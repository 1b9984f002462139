"""Training checkpoints: everything a killed run needs to continue exactly where it stopped.

A checkpoint is one uncompressed `.npz` (a zip archive: every member carries a CRC-32) holding

- `model/<i>`: every model variable, random-seed states of dropout layers included,
- `optimizer/<i>`: the optimizer's step counter and slots (AdaGrad accumulators, Adam moments),
- `best/<i>`: the best validation epoch's weights so far (early stopping),
- `meta.json`: the position (epoch in progress, batches of it done, global step), the epoch's
  running loss sum, the per-epoch history, the early-stopping state, the config hash and the
  MLflow run it belongs to, and every variable's name and shape.

The data order needs no state of its own: an epoch's order depends only on (seed, epoch), so the
position is the epoch and the number of batches already consumed.

It is written to a hidden sibling and renamed into place (`fefm_lab.fileio.atomic_path`), so the
file is either a complete checkpoint or absent. Anything unreadable (truncated, a bad CRC, another
format version, another configuration, other variables) is ignored with a warning: the run starts
over instead of loading garbage.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fefm_lab.errors import UserError
from fefm_lab.fileio import atomic_path

LOG = logging.getLogger(__name__)
FORMAT_VERSION = 1
CHECKPOINT_FILE = "checkpoint.npz"
LOCK_FILE = "lock"
_META = "meta.json"


class CheckpointInUse(UserError):
    """Another live process holds the checkpoint directory of this configuration."""


class CheckpointNotWritable(UserError):
    """The checkpoint directory cannot be written (full disk, read-only, no permission)."""


@dataclass
class Position:
    """Where training stands, and the bookkeeping that decides what happens next.

    `epoch` is the epoch in progress (1-based) and `batches_done` how many of its batches were
    applied; `loss_sum` / `loss_batches` are that epoch's running train log loss so far (the
    float32 sum, bit for bit). `training_done` marks the state after the last epoch (early
    stop or max_epochs): only the test evaluation remains. `cpu_seconds` is the process CPU time
    (all threads) training took up to this position, summed over every start of the run.
    """

    epoch: int = 1
    batches_done: int = 0
    steps: int = 0
    loss_sum: float = 0.0
    loss_batches: int = 0
    epoch_samples: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_logloss: float = float("inf")
    best_auc: float = float("nan")
    epochs_without_gain: int = 0
    stopped_early: bool = False
    training_done: bool = False
    train_seconds: float = 0.0
    epoch_seconds: float = 0.0
    samples: int = 0
    first_step_seconds: float = float("nan")
    cpu_seconds: float = 0.0


@dataclass
class TrainingState:
    """A checkpoint's content: the position plus the arrays of model, optimizer and best weights
    (when saving, variables do: they are copied one at a time)."""

    position: Position
    model: list[np.ndarray]
    optimizer: list[np.ndarray]
    best: list[np.ndarray] | None
    variable_names: list[str]
    config_hash: str = ""
    run_id: str = ""
    saved_at: float = 0.0
    host: str = ""
    pid: int = 0

    def describe(self) -> str:
        p = self.position
        where = "training done" if p.training_done else f"epoch {p.epoch}, batch {p.batches_done}"
        return f"{where}, step {p.steps}"


def _meta(state: TrainingState) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "config_hash": state.config_hash,
        "run_id": state.run_id,
        "saved_at": state.saved_at,
        "host": state.host,
        "pid": state.pid,
        "position": asdict(state.position),
        "variables": [
            {"name": name, "shape": list(array.shape)}
            for name, array in zip(state.variable_names, state.model, strict=True)
        ],
        "optimizer_shapes": [list(a.shape) for a in state.optimizer],
        "best_count": -1 if state.best is None else len(state.best),
    }


def _write_array(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    """One `.npy` member, as `np.savez` writes it (so `np.load` reads the file)."""
    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array(member, array, allow_pickle=False)


class CheckpointDirectory:
    """The checkpoint of one configuration: `<checkpoint_dir>/<config_hash>/checkpoint.npz`.

    Use `lock()` before training: it holds an exclusive `flock` on `lock` for the lifetime of
    the process (released by the kernel on any exit, SIGKILL included), so two processes never
    train the same configuration into the same checkpoint.
    """

    def __init__(self, root: str | Path, config_hash: str) -> None:
        self.root = Path(root)
        self.config_hash = config_hash
        self.directory = Path(root) / config_hash
        self.path = self.directory / CHECKPOINT_FILE
        self._lock_descriptor: int | None = None

    # ------------------------------------------------------------ lock

    def lock(self) -> None:
        """Take the directory's lock or raise CheckpointInUse naming the holder."""
        lock_path = self.directory / LOCK_FILE
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise self._not_writable(lock_path, error) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            raise CheckpointInUse(
                f"{lock_path}: this configuration (config hash {self.config_hash}) is being "
                f"trained by another process ({holder}); wait for it or stop it first"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"host {socket.gethostname()} pid {os.getpid()}".encode(), 0)
        self._lock_descriptor = descriptor

    def held_by_a_live_process(self) -> bool:
        """Whether a live process (this one included) holds the lock; it is not taken."""
        try:
            descriptor = os.open(self.directory / LOCK_FILE, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(descriptor)  # also drops the shared lock just taken
        return False

    def saved_for_run(self) -> str | None:
        """The run id the checkpoint was saved for (its meta only), or None if unreadable."""
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                return str(json.loads(bytes(archive[_META]).decode())["run_id"])
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
            return None

    def unlock(self) -> None:
        if self._lock_descriptor is not None:
            os.close(self._lock_descriptor)  # closing releases the flock
            self._lock_descriptor = None

    # ------------------------------------------------------------ save / load

    def save(self, state: TrainingState) -> Path:
        """Write `state` atomically; the previous checkpoint stays until the new one is whole.

        The arrays may be variables (anything `np.asarray` takes): each is copied and written
        in turn, so saving holds one variable's copy at a time, not a second copy of the model.
        """
        state.config_hash = self.config_hash
        state.saved_at = time.time()
        state.host = socket.gethostname()
        state.pid = os.getpid()
        members = [("model", state.model), ("optimizer", state.optimizer)]
        if state.best is not None:
            members.append(("best", state.best))
        try:
            with (
                atomic_path(self.path) as partial,
                zipfile.ZipFile(partial, "x", zipfile.ZIP_STORED, allowZip64=True) as archive,
            ):
                meta = np.frombuffer(json.dumps(_meta(state)).encode(), dtype=np.uint8)
                _write_array(archive, _META, meta)
                for prefix, arrays in members:
                    for index, array in enumerate(arrays):
                        _write_array(archive, f"{prefix}/{index}", np.asarray(array))
        except OSError as error:
            raise self._not_writable(self.path, error) from None
        return self.path

    def _not_writable(self, path: Path, error: OSError) -> CheckpointNotWritable:
        """The error naming `paths.checkpoint_dir` (a bare ENOSPC names no setting)."""
        return CheckpointNotWritable(
            f"paths.checkpoint_dir={self.root}: cannot write {path}: "
            f"{error.strerror or error}; free space there or set paths.checkpoint_dir to "
            "another directory (the previous checkpoint, if any, is kept)"
        )

    def load(self) -> TrainingState | None:
        """The checkpoint, or None (with a warning) when it is missing, damaged or not ours."""
        if not self.path.is_file():
            return None
        try:
            return self._read()
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
            LOG.warning(
                "ignoring checkpoint %s: %s: %s; training starts over",
                self.path,
                type(error).__name__,
                error,
            )
            return None

    def _read(self) -> TrainingState:
        with np.load(self.path, allow_pickle=False) as archive:
            meta = json.loads(bytes(archive[_META]).decode())
            if meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(
                    f"format version {meta.get('format_version')!r}, expected {FORMAT_VERSION}"
                )
            if meta.get("config_hash") != self.config_hash:
                raise ValueError(
                    f"it belongs to config hash {meta.get('config_hash')!r}, "
                    f"not {self.config_hash!r}"
                )
            variables = meta["variables"]
            model = [archive[f"model/{i}"] for i in range(len(variables))]
            optimizer = [archive[f"optimizer/{i}"] for i in range(len(meta["optimizer_shapes"]))]
            count = meta["best_count"]
            best = None if count < 0 else [archive[f"best/{i}"] for i in range(count)]
        for spec, array in zip(variables, model, strict=True):
            if list(array.shape) != spec["shape"]:
                raise ValueError(f"variable {spec['name']} has shape {array.shape}, not {spec}")
        return TrainingState(
            position=Position(**meta["position"]),
            model=model,
            optimizer=optimizer,
            best=best,
            variable_names=[spec["name"] for spec in variables],
            config_hash=meta["config_hash"],
            run_id=meta["run_id"],
            saved_at=meta["saved_at"],
            host=meta["host"],
            pid=meta["pid"],
        )

    def delete(self) -> None:
        """Remove the checkpoint directory (the run finished); the lock goes with it."""
        self.unlock()
        shutil.rmtree(self.directory, ignore_errors=True)
