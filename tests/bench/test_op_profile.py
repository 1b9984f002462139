"""The op-by-op profile: how ops are grouped, and per-step sums read from a hand-built XSpace."""

from __future__ import annotations

import pytest

from scripts.bench.op_profile import (
    DNN_BACKWARD,
    DNN_FORWARD,
    FEFM_BACKWARD,
    FEFM_FORWARD,
    GROUPS,
    LOOKUPS,
    OPTIMIZER,
    OTHER,
    grouped_milliseconds,
    op_group,
    op_milliseconds,
)

SCOPE = "StatefulPartitionedCall/deepfefm_1"
GRAD = "StatefulPartitionedCall/gradient_tape/deepfefm_1"


@pytest.mark.parametrize(
    ("name", "op_type", "group"),
    [
        (f"{SCOPE}/fefm_1/FefmScores", "FefmScores", FEFM_FORWARD),
        (f"{GRAD}/fefm_1/FefmScoresGrad", "FefmScoresGrad", FEFM_BACKWARD),
        # the TensorFlow-ops path of the FEFM layer: its scope, not its op types
        (f"{SCOPE}/fefm_1/MatMul", "_MklBatchMatMulV2", FEFM_FORWARD),
        (f"{GRAD}/fefm_1/transpose/transpose", "_MklTranspose", FEFM_BACKWARD),
        (f"{SCOPE}/dnn_activation_0_1/Relu", "_MklNativeFusedMatMul", DNN_FORWARD),
        (f"{GRAD}/dnn_hidden_0_1/MatMul/MatMul_1", "_MklMatMul", DNN_BACKWARD),
        (f"{GRAD}/dnn_activation_1_1/ReluGrad", "ReluGrad", OTHER),
        (f"{SCOPE}/feature_embedding_1/Gather", "ResourceGather", LOOKUPS),
        (f"{GRAD}/feature_embedding_1/Mul", "Mul", LOOKUPS),
        (f"{GRAD}/linear_1/strided_slice/StridedSliceGrad", "StridedSliceGrad", LOOKUPS),
        (f"{SCOPE}/dnn_input_1/concat", "ConcatV2", OTHER),
        ("StatefulPartitionedCall/AddN_3", "AddN", OTHER),
        ("FefmLabRowSparseAdagrad_1", "FefmLabRowSparseAdagrad", OPTIMIZER),
        ("ResourceScatterAdd", "ResourceScatterAdd", OPTIMIZER),
        # `deepfefm_1` is the model's scope, not the FEFM layer's
        (f"{SCOPE}/prediction_1/Sum_1", "Sum", OTHER),
    ],
)
def test_op_group(name: str, op_type: str, group: str) -> None:
    assert op_group(name, op_type) == group


def _xspace(events: list[tuple[str, str, int]]) -> bytes:
    """A host plane with one line per thread; events (thread, label, duration in ps)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    plane = space.planes.add(name="/host:CPU")
    space.planes.add(name="/device:CUSTOM:ignored").lines.add(name="x").events.add(
        metadata_id=1, duration_ps=10**12
    )
    labels: dict[str, int] = {}
    lines: dict[str, object] = {}
    for thread, label, duration in events:
        if label not in labels:
            labels[label] = len(labels) + 1
            plane.event_metadata[labels[label]].name = label
        if thread not in lines:
            lines[thread] = plane.lines.add(name=thread)
        lines[thread].events.add(metadata_id=labels[label], duration_ps=duration)
    return space.SerializeToString()


def test_grouped_milliseconds_sums_per_step() -> None:
    ms = 10**9  # picoseconds in a millisecond
    xplane = _xspace(
        [
            ("tf_Compute/1", f"{SCOPE}/fefm_1/FefmScores:FefmScores", 3 * ms),
            ("tf_Compute/1", f"{SCOPE}/fefm_1/FefmScores:FefmScores", 5 * ms),
            ("tf_Compute/2", f"{GRAD}/dnn_hidden_0_1/MatMul/MatMul:_MklMatMul", 6 * ms),
            ("tf_Compute/2", "FefmLabDenseAdagrad:FefmLabDenseAdagrad", 2 * ms),
            ("tf_Compute/2", "ParallelFor", 40 * ms),  # a scheduler event, not an op
            # the runtime's own events are not ops
            ("tf_Compute/1", "ExecutorState::Process", 50 * ms),
            ("tf_Compute/1", "EagerLocalExecute: __inference__train_step_9", 50 * ms),
            ("tf_Compute/1", "KernelAndDeviceFunc::Run", 10 * ms),
            ("tf_Compute/1", "KernelAndDeviceFunc::Run", 12 * ms),
        ]
    )
    groups, wall = grouped_milliseconds(xplane, steps=2)
    assert list(groups) == list(GROUPS)
    assert groups[FEFM_FORWARD] == 4.0 and groups[DNN_BACKWARD] == 3.0
    assert groups[OPTIMIZER] == 1.0 and groups[LOOKUPS] == 0.0
    assert wall == 11.0


def test_op_milliseconds_profiles_a_traced_function() -> None:
    import tensorflow as tf

    table = tf.Variable(tf.ones((64, 8)))

    @tf.function
    def step() -> tf.Tensor:
        return tf.reduce_sum(tf.matmul(table, table, transpose_b=True))

    step()
    groups, wall = op_milliseconds(lambda: step().numpy(), steps=3)
    # a matmul outside the trainer's gradient function counts as the optimizer's (top level)
    assert groups[OPTIMIZER] > 0 and wall > 0
    assert sum(groups.values()) == groups[OPTIMIZER]
