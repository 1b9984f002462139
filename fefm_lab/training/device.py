"""TensorFlow start-up: a quiet import and the choice of device (`trainer.device`).

TensorFlow 2.21 writes its start-up lines ("oneDNN custom operations are on", "This TensorFlow
binary is optimized to use available CPU instructions", absl's "All log messages before
absl::InitializeLog()") from C++ straight to file descriptor 2 while it is imported;
TF_CPP_MIN_LOG_LEVEL does not hide the absl ones. So the import runs with descriptor 2 pointed at
a temporary file, which is replayed to stderr only when asked for (`verbose`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from types import ModuleType

from fefm_lab.config.trainer import DEVICES
from fefm_lab.errors import ConfigError, UserError


def import_tensorflow(verbose: bool = False) -> ModuleType:
    """`import tensorflow`, hiding its start-up log lines unless `verbose`."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        except ModuleNotFoundError:
            raise UserError(
                "TensorFlow is not installed: pip install 'fefm-lab[cpu]' (the CPU build) or "
                "'fefm-lab[gpu]' (the CUDA build, for an NVIDIA GPU)"
            ) from None
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        if verbose:
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            sys.stderr.flush()
    return tensorflow


def select_device(choice: str) -> str:
    """Make TensorFlow use the device `choice` asks for; return what it uses, e.g. `GPU:0 (...)`.

    auto: the first visible GPU, else the CPU. cpu: hide every GPU. gpu: the first GPU, or a
    ConfigError saying why there is none. Run it before the first model is built: TensorFlow
    fixes its visible devices when its runtime starts (later calls keep what it has).
    """
    if choice not in DEVICES:
        raise ConfigError(f"trainer.device: expected one of {DEVICES}, got {choice!r}")
    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if choice == "gpu" and not gpus:
        build = "a CPU-only build" if not tf.test.is_built_with_cuda() else "a CUDA build"
        raise ConfigError(
            f"trainer.device=gpu, but TensorFlow {tf.__version__} ({build}) sees no GPU. "
            "Install the CUDA build with `pip uninstall -y tensorflow-cpu && "
            "pip install 'fefm-lab[gpu]'` (README: Running on a GPU), check `nvidia-smi`, "
            "or use trainer.device=auto|cpu"
        )
    if choice == "cpu" or not gpus:
        if gpus:
            try:
                tf.config.set_visible_devices([], "GPU")
            except RuntimeError:  # runtime started (a reused worker): say what it really uses
                if tf.config.get_visible_devices("GPU"):
                    return _gpu_name(tf, gpus[0])
        return "CPU"
    try:
        tf.config.set_visible_devices(gpus[0], "GPU")
        # Take GPU memory as needed: two jobs can share a card, and peak use means something.
        tf.config.experimental.set_memory_growth(gpus[0], True)
    except RuntimeError:
        pass  # runtime already started in this worker: it keeps its first setting
    return _gpu_name(tf, gpus[0])


def _gpu_name(tf: ModuleType, gpu) -> str:
    details = tf.config.experimental.get_device_details(gpu)
    name = details.get("device_name", "unknown GPU")
    return f"GPU:0 ({name})"
