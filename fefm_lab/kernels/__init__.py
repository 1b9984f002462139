"""Compiled TensorFlow kernels: C++ custom ops that fuse what TensorFlow runs as several ops.

Each `<name>.cc` in this folder builds into its own `_<name>.so` (`python -m
fefm_lab.kernels.build`, which `make setup` runs and which fails loudly when a kernel does not
build or load). At run time a kernel is optional: `load` returns None when its library is
missing, was built for another TensorFlow or from another source, or fails to load, and the
caller takes its TensorFlow-ops path (same maths, slower). `FEFM_LAB_KERNELS=0` turns every kernel
off, which is how benchmarks and tests compare the two paths side by side. A run's tag
`kernels.isa` names the instruction set its kernels ran (`run_instruction_set`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

KERNEL_DIR = Path(__file__).resolve().parent
# The MLflow run tag naming the instruction set the run's kernels executed (`run_instruction_set`);
# filter runs with tags.`kernels.isa` = 'avx2'.
ISA_TAG = "kernels.isa"
# The kernels' on/off switch: "0", "false", "off" or "no" runs the TensorFlow ops, anything else
# (or unset) the kernels.
SWITCH_VARIABLE = "FEFM_LAB_KERNELS"


def source_path(name: str) -> Path:
    """The C++ source of kernel `name`."""
    return KERNEL_DIR / f"{name}.cc"


def library_path(name: str) -> Path:
    """Where the build puts kernel `name`'s shared library."""
    return KERNEL_DIR / f"_{name}.so"


def stamp_path(name: str) -> Path:
    """The build record next to the library: source digest and TensorFlow version."""
    return KERNEL_DIR / f"_{name}.build.json"


def kernel_names() -> list[str]:
    """Every kernel with a source in this folder, sorted."""
    return sorted(path.stem for path in KERNEL_DIR.glob("*.cc"))


def source_digest(name: str) -> str:
    """SHA-256 of the kernel's source: a library built from other source is not loaded."""
    return hashlib.sha256(source_path(name).read_bytes()).hexdigest()


def kernels_enabled() -> bool:
    """False when FEFM_LAB_KERNELS is 0/false/off/no."""
    return os.environ.get(SWITCH_VARIABLE, "1").strip().lower() not in ("0", "false", "off", "no")


def stale_reason(name: str) -> str | None:
    """Why kernel `name`'s library cannot be used as built, or None when it can."""
    import tensorflow as tf

    if not library_path(name).is_file() or not stamp_path(name).is_file():
        return f"{library_path(name).name} is not built (run `make setup`)"
    try:
        stamp = json.loads(stamp_path(name).read_text())
    except (OSError, ValueError):
        return f"{stamp_path(name).name} is unreadable (run `make setup`)"
    if stamp.get("tensorflow") != tf.__version__:
        return (
            f"{library_path(name).name} was built for TensorFlow {stamp.get('tensorflow')}, "
            f"this is {tf.__version__} (run `make setup`)"
        )
    if stamp.get("source_sha256") != source_digest(name):
        return f"{library_path(name).name} was built from another {name}.cc (run `make setup`)"
    return None


def run_instruction_set(fefm_isa: str | None, optimizer_kernel: bool) -> str:
    """A run's `kernels.isa` tag: `fefm_isa`, the instruction set the fused FEFM kernel chose
    (avx512f, avx2 or baseline), when the run computed its interactions with it; else `baseline`
    when the optimizer's kernel ran (it has no variants: compiled for the architecture's
    baseline, as build.py sets no -march); else `none` (TensorFlow ops only)."""
    if fefm_isa:
        return fefm_isa
    return "baseline" if optimizer_kernel else "none"


def in_xla_context() -> bool:
    """Whether the graph being traced is XLA-compiled (`jit_compile=True`): no kernel runs there.

    TensorFlow has no public API for this; its own layers ask the same private helper. Should a
    TensorFlow release drop it, the answer is True: the unsorted sums are right everywhere, only
    slower outside XLA.
    """
    import tensorflow as tf

    try:
        from tensorflow.python.ops import control_flow_util

        return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))
    except (ImportError, AttributeError):
        return True


@functools.cache
def _load(name: str) -> tuple[Any | None, str]:
    import tensorflow as tf

    reason = stale_reason(name)
    if reason is not None:
        return None, reason
    try:
        return tf.load_op_library(str(library_path(name))), f"loaded {library_path(name)}"
    except (tf.errors.NotFoundError, OSError) as error:
        return None, f"{library_path(name).name} failed to load: {error}"


def load(name: str) -> Any | None:
    """The op module of kernel `name` (tf.load_op_library), or None: see `status`."""
    if not kernels_enabled():
        return None
    return _load(name)[0]


def status(name: str) -> str:
    """One line: whether kernel `name` is in use, and if not, why."""
    if not kernels_enabled():
        return f"kernel {name}: off ({SWITCH_VARIABLE}={os.environ[SWITCH_VARIABLE]})"
    module, reason = _load(name)
    return f"kernel {name}: {'in use' if module is not None else 'not used'} ({reason})"
