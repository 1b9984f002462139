"""Where a training step's time goes op by op: TensorFlow's profiler on the step that ships.

`op_milliseconds` runs a traced step under `tf.profiler.experimental`, reads the host plane of the
XSpace it writes (the `*.xplane.pb` protobuf, parsed with TensorFlow's own `xplane_pb2`) and sums
each op's duration per step into the groups of `op_group`. The executor runs independent ops at
the same time on its two pools, so the groups add up to more than the step's wall time: they say
which work there is, the step time says how much of it overlapped.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

FEFM_FORWARD = "FEFM interactions, forward"
FEFM_BACKWARD = "FEFM interactions, backward"
DNN_FORWARD = "DNN matmuls, forward (with bias and ReLU)"
DNN_BACKWARD = "DNN matmuls, backward"
LOOKUPS = "embedding and linear lookups, their L2 terms and gradients"
OTHER = "other element-wise, copy and reduction ops"
OPTIMIZER = "optimizer update"
GROUPS = (FEFM_FORWARD, FEFM_BACKWARD, DNN_FORWARD, DNN_BACKWARD, LOOKUPS, OTHER, OPTIMIZER)

# The traced step (`Trainer.train_step`) computes the loss and gradients inside one function
# call; the optimizer's update ops run after it, at the top level of the step's graph.
_GRADIENT_FUNCTION = "StatefulPartitionedCall"
_FEFM_SCOPE = re.compile(r"fefm(_\d+)?$")
_LOOKUP_SCOPES = ("feature_embedding", "linear")
FEFM_KERNEL_OPS = {"FefmScores": FEFM_FORWARD, "FefmScoresGrad": FEFM_BACKWARD}
# the step's wall time in the host plane: the function call that runs the whole traced step
STEP_EVENT = "KernelAndDeviceFunc::Run"
# An op's event is labelled "<graph name>:<op type>"; the executor's and the eager runtime's own
# events ("ExecutorState::Process", "EagerLocalExecute: __inference_...") are not ops.
_OP_EVENT = re.compile(r"([^\s:]+):([A-Za-z_]\w*)")


def op_group(name: str, op_type: str) -> str:
    """The group of one op, from its graph name (scopes joined by '/') and its type."""
    if op_type in FEFM_KERNEL_OPS:
        return FEFM_KERNEL_OPS[op_type]
    scopes = name.split("/")
    if scopes[0] != _GRADIENT_FUNCTION:
        return OPTIMIZER
    backward = "gradient_tape" in scopes
    if any(_FEFM_SCOPE.match(scope) for scope in scopes):
        return FEFM_BACKWARD if backward else FEFM_FORWARD
    if "MatMul" in op_type and any(scope.startswith("dnn_") for scope in scopes):
        return DNN_BACKWARD if backward else DNN_FORWARD
    if any(scope.startswith(_LOOKUP_SCOPES) for scope in scopes):
        return LOOKUPS
    return OTHER


def grouped_milliseconds(xplane: bytes, steps: int) -> tuple[dict[str, float], float]:
    """(group -> op milliseconds per step, the step's wall milliseconds) from an XSpace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(xplane)
    groups: Counter[str] = Counter()
    wall_ps = 0
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            for event in line.events:
                label = plane.event_metadata[event.metadata_id].name
                if label == STEP_EVENT:
                    wall_ps += event.duration_ps
                elif op := _OP_EVENT.fullmatch(label):
                    groups[op_group(*op.groups())] += event.duration_ps
    per_step = {group: groups[group] / 1e9 / steps for group in GROUPS}
    return per_step, wall_ps / 1e9 / steps


def op_milliseconds(step: Callable[[], object], steps: int = 10) -> tuple[dict[str, float], float]:
    """Profile `steps` calls of an already traced and warmed-up `step`: milliseconds per step
    of each op group, and of the whole step as the profiler saw it."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="fefm-op-profile-") as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            for _ in range(steps):
                step()
        finally:
            tf.profiler.experimental.stop()
        (xplane,) = Path(logdir).rglob("*.xplane.pb")
        return grouped_milliseconds(xplane.read_bytes(), steps)
