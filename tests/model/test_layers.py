"""The layers: hand-worked numbers, float64 references, config round trips, bad arguments."""

from __future__ import annotations

import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf
from float64_reference import fefm_gradients_reference, fefm_reference, pair_dots

from fefm_lab import layers
from fefm_lab.layers import (
    FEFMInteraction,
    FieldEmbedding,
    FMInteraction,
    FwFMInteraction,
    LinearLogit,
    SelectFields,
    SumLogits,
    pair_indices,
)

# Three fields, k = 2: <v0, v1> = 11, <v0, v2> = 2, <v1, v2> = 4.
V = np.array([[[1, 2], [3, 4], [0, 1]], [[1, 0], [0, 1], [2, 2]]], "float32")


def numpy(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def test_docstring_examples_run():
    result = doctest.testmod(layers, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 20 and result.failed == 0, result


def test_pair_order_is_lexicographic():
    left, right = pair_indices(4)
    assert list(zip(left, right, strict=True)) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize(("n", "k"), [(2, 1), (3, 4), (4, 3), (5, 2), (8, 5)])
def test_fefm_matches_numpy_loop(symmetric, n, k, fefm_path):
    rng = np.random.default_rng(n * 10 + k)
    x = rng.normal(size=(7, n, k)).astype("float32")
    layer = FEFMInteraction(symmetric=symmetric, seed=3)
    out = numpy(layer(x))
    u = numpy(layer.field_matrices)
    assert u.shape == (n * (n - 1) // 2, k, k)
    expected = fefm_reference(x, u, symmetric)
    assert out.shape == expected.shape
    rel = np.abs(out - expected).max() / np.abs(expected).max()
    assert rel < 1e-5


def test_fefm_hand_built_numbers():
    layer = FEFMInteraction(seed=0)
    layer.build((None, 3, 2))
    layer.field_matrices.assign(
        np.array([[[1, 0], [0, 0]], [[0, 1], [0, 0]], [[0, 0], [2, 0]]], "float32")
    )
    x = np.array([[[1, 2], [3, 4], [5, 6]]], "float32")
    # W_0 = [[2,0],[0,0]]: 2*1*3 = 6; W_1 = [[0,1],[1,0]]: 1*6 + 2*5 = 16;
    # W_2 = [[0,2],[2,0]]: 3*2*6 + 4*2*5 = 76.
    np.testing.assert_array_equal(numpy(layer(x)), [[6, 16, 76]])


@pytest.mark.parametrize(
    ("symmetric", "grad_u", "grad_v0", "grad_v1"),
    [
        # r = v0^T (U + U^T) v1 with U = [[1, 0], [0, 0]]: dr/dU = v0 v1^T + v1 v0^T,
        # dr/dv0 = W v1 = [6, 0], dr/dv1 = W^T v0 = [2, 0].
        (True, [[6, 10], [10, 16]], [6, 0], [2, 0]),
        # r = v0^T U v1: dr/dU = v0 v1^T, dr/dv0 = U v1 = [3, 0], dr/dv1 = U^T v0 = [1, 0].
        (False, [[3, 4], [6, 8]], [3, 0], [1, 0]),
    ],
)
def test_fefm_hand_worked_gradients(symmetric, grad_u, grad_v0, grad_v1, fefm_path):
    layer = FEFMInteraction(symmetric=symmetric, seed=0)
    layer.build((None, 2, 2))
    layer.field_matrices.assign(np.array([[[1, 0], [0, 0]]], "float32"))
    v = tf.constant([[[1, 2], [3, 4]]], "float32")
    with tf.GradientTape() as tape:
        tape.watch(v)
        r = tf.reduce_sum(layer(v))
    d_v, d_u = tape.gradient(r, [v, layer.field_matrices.value])
    np.testing.assert_array_equal(d_u.numpy(), [grad_u])
    np.testing.assert_array_equal(d_v.numpy(), [[grad_v0, grad_v1]])


@pytest.mark.parametrize("compiled", ["eager", "graph", "xla"])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize(("n", "k"), [(2, 1), (3, 4), (5, 2), (8, 5), (6, 17)])
def test_fefm_gradients_match_float64_reference(symmetric, n, k, compiled, fefm_path):
    """The gradient of both paths (the fused kernel's, the hand-written TensorFlow one): eager,
    in a tf.function as the trainer runs it, and XLA-compiled (`trainer.jit_compile`), which
    has no sorted segment sum and no fused kernel (the TensorFlow ops run there)."""
    rng = np.random.default_rng(100 * n + k)
    layer = FEFMInteraction(symmetric=symmetric, seed=5)
    layer.build((None, n, k))
    v = tf.constant(rng.normal(size=(6, n, k)), "float32")
    upstream = tf.constant(rng.normal(size=(6, n * (n - 1) // 2)), "float32")

    def gradients(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            loss = tf.reduce_sum(upstream * layer(v))
        return tape.gradient(loss, [v, layer.field_matrices.value])

    if compiled != "eager":
        gradients = tf.function(gradients, jit_compile=compiled == "xla")
    d_v, d_u = gradients(v)
    want_v, want_u = fefm_gradients_reference(
        v.numpy(), numpy(layer.field_matrices), upstream.numpy(), symmetric
    )
    for got, want in ((d_v, want_v), (d_u, want_u)):
        assert got.shape == want.shape
        assert np.abs(got.numpy() - want).max() / np.abs(want).max() < 1e-5


def fefm_graph_op_types(layer: FEFMInteraction, v: tf.Tensor, jit_compile: bool) -> set[str]:
    """The op types of the traced forward + backward graph of the layer."""

    def gradients(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            loss = tf.reduce_sum(layer(v))
        return tape.gradient(loss, [v, layer.field_matrices.value])

    graph = tf.function(gradients, jit_compile=jit_compile).get_concrete_function(v).graph
    return {op.type for op in graph.get_operations()}


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fefm_path_follows_the_switch_and_xla(fefm_path, jit_compile):
    """The fused op (and its gradient op) is in the graph exactly when the kernel is on and the
    graph is not XLA-compiled; otherwise the pair-batched TensorFlow ops are."""
    layer = FEFMInteraction(seed=1)
    layer.build((None, 4, 3))
    types = fefm_graph_op_types(layer, tf.ones((2, 4, 3)), jit_compile)
    fused = fefm_path == "kernel" and not jit_compile
    assert ("FefmScores" in types) is fused
    assert ("FefmScoresGrad" in types) is fused
    assert ("BatchMatMulV2" in types) is not fused


def test_fefm_l2_counts_u_not_w():
    layer = FEFMInteraction(l2_reg=0.5, seed=1)
    layer(np.ones((1, 3, 2), "float32"))
    u = numpy(layer.field_matrices)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(layer.losses[0]), 0.5 * np.sum(u.astype("float64") ** 2), 1e-6)


def test_fefm_seed_reproduces_weights():
    a, b, c = (FEFMInteraction(seed=s) for s in (1, 1, 2))
    for layer in (a, b, c):
        layer.build((None, 4, 3))
    ua, ub, uc = (numpy(x.field_matrices) for x in (a, b, c))
    np.testing.assert_array_equal(ua, ub)
    assert not np.allclose(ua, uc)
    assert np.abs(ua).max() <= 2.0  # truncated at two standard deviations


def test_fefm_needs_two_fields():
    with pytest.raises(ValueError, match="at least 2 fields.*received 1"):
        FEFMInteraction()(np.ones((2, 1, 3), "float32"))
    with pytest.raises(ValueError, match=r"shape \(batch, fields, k\), received \(None, 3\)"):
        FEFMInteraction().build((None, 3))


def test_fefm_reads_configs_saved_with_the_old_implementation_key():
    config = {**FEFMInteraction(seed=4).get_config(), "implementation": "field_grouped"}
    layer = FEFMInteraction.from_config(config)
    assert "implementation" not in layer.get_config() and layer.seed == 4


def test_fefm_functional_model_save_load(tmp_path, fefm_path):
    inputs = keras.Input((5, 3))
    outputs = keras.layers.Dense(1)(FEFMInteraction(seed=2)(inputs))
    model = keras.Model(inputs, outputs)
    assert model.output_shape == (None, 1)
    x = np.random.default_rng(2).normal(size=(4, 5, 3)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_field_embedding_uses_offsets_and_sparse_gradients():
    layer = FieldEmbedding([2, 3], embedding_dim=2, seed=4)
    layer.build(None)
    table = np.arange(10, dtype="float32").reshape(5, 2)
    layer.table.assign(table)
    ids = [np.array([[1], [0]], "int32"), np.array([[2], [0]], "int32")]
    with tf.GradientTape() as tape:
        out = layer(ids)
        loss = tf.reduce_sum(out)
    # Column 1 starts at row 2: ids (1, 2) -> rows (1, 4) = [2, 3], [8, 9].
    np.testing.assert_array_equal(out.numpy(), [[[2, 3], [8, 9]], [[0, 1], [4, 5]]])
    grad = tape.gradient(loss, layer.table.value)
    assert isinstance(grad, tf.IndexedSlices)
    assert sorted(grad.indices.numpy().tolist()) == [0, 1, 2, 4]


def test_field_embedding_l2_modes():
    table = np.arange(10, dtype="float64").reshape(5, 2) / 10
    ids = [np.array([[1], [1]], "int32"), np.array([[2], [0]], "int32")]
    batch = FieldEmbedding([2, 3], 2, l2_reg=0.1, l2_mode="batch")
    whole = FieldEmbedding([2, 3], 2, l2_reg=0.1, l2_mode="table")
    for layer in (batch, whole):
        layer.build(None)
        layer.table.assign(table.astype("float32"))
        layer(ids)
    # batch: rows (1, 4) then (1, 2), averaged over the 2 examples.
    sq = (table**2).sum(axis=1)
    np.testing.assert_allclose(
        float(batch.losses[0]), 0.1 * (sq[1] + sq[4] + sq[1] + sq[2]) / 2, 1e-6
    )
    np.testing.assert_allclose(float(whole.losses[0]), 0.1 * sq.sum(), 1e-6)


def test_field_embedding_initialiser():
    layer = FieldEmbedding([1000], 8, seed=1)
    layer.build(None)
    std = float(np.std(numpy(layer.table)))
    assert 0.9e-4 < std < 1.1e-4
    zeros = FieldEmbedding([3], 2, stddev=0.0)
    zeros.build(None)
    np.testing.assert_array_equal(numpy(zeros.table), np.zeros((3, 2)))


def test_linear_logit_numbers():
    layer = LinearLogit([2, 3], dense_dim=2, seed=1)
    layer.build(None)
    layer.table.assign(np.array([[1], [2], [10], [20], [30]], "float32"))
    layer.dense_kernel.assign(np.array([[0.5], [-1.0]], "float32"))
    out = layer([np.array([[1]]), np.array([[2]]), np.array([[2.0, 3.0]], "float32")])
    np.testing.assert_array_equal(numpy(out), [[2 + 30 + 1 - 3]])


def test_linear_logit_batch_l2_counts_looked_up_weights_and_the_whole_dense_kernel():
    layer = LinearLogit([2], dense_dim=1, l2_reg=0.5, l2_mode="batch")
    layer.build(None)
    layer.table.assign(np.array([[1.0], [3.0]], "float32"))
    layer.dense_kernel.assign(np.array([[2.0]], "float32"))
    layer([np.array([[1], [1]]), np.array([[1.0], [1.0]], "float32")])
    # table: 0.5 * mean(3^2, 3^2) = 4.5; dense kernel (whole): 0.5 * 2^2 = 2.
    assert sorted(float(x) for x in layer.losses) == [2.0, 4.5]


def test_fm_and_fwfm_hand_worked_numbers():
    # <v0, v1>, <v0, v2>, <v1, v2>: (11, 2, 4) and (0, 2, 2).
    np.testing.assert_array_equal(pair_dots(V), [[11, 2, 4], [0, 2, 2]])
    np.testing.assert_array_equal(numpy(FMInteraction()(V)), [[17], [4]])
    fwfm = FwFMInteraction(seed=1)
    fwfm.build(V.shape)
    fwfm.pair_weights.assign(np.array([1.0, -1.0, 0.5], "float32"))
    np.testing.assert_array_equal(numpy(fwfm(V)), [[11 - 2 + 2], [0 - 2 + 1]])


def test_fm_and_fwfm_match_float64_reference():
    x = np.random.default_rng(3).normal(size=(5, 4, 3))
    dots = pair_dots(x)
    fm = numpy(FMInteraction()(x.astype("float32")))
    np.testing.assert_allclose(fm[:, 0], dots.sum(axis=1), rtol=1e-5)
    fwfm = FwFMInteraction(seed=1)
    out = numpy(fwfm(x.astype("float32")))
    r = numpy(fwfm.pair_weights).astype("float64")
    np.testing.assert_allclose(out[:, 0], dots @ r, rtol=1e-5)


def test_select_fields_and_head_numbers():
    x = np.arange(24, dtype="float32").reshape(2, 3, 4)
    np.testing.assert_array_equal(numpy(SelectFields([2, 0])(x)), x[:, [2, 0]])
    head = SumLogits("binary")
    out = head([np.array([[1.0]], "float32"), np.array([[0.5, -0.5]], "float32")])
    np.testing.assert_allclose(numpy(out), [[1 / (1 + np.exp(-1.0))]], 1e-6)
    regression = SumLogits("regression")
    regression.build(None)
    regression.bias.assign([0.25])
    out = regression([np.array([[1.0], [2.0]]), np.array([[0.5, -1.5], [1.0, 1.0]])])
    np.testing.assert_array_equal(numpy(out), [[0.25], [4.25]])


def _ids(rng, vocabulary: int) -> np.ndarray:
    return rng.integers(0, vocabulary, (3, 1)).astype("int32")


_RNG = np.random.default_rng(20)
_X = _RNG.normal(size=(3, 4, 2)).astype("float32")
ROUND_TRIPS = {
    "FEFMInteraction": (FEFMInteraction, {"symmetric": False, "l2_reg": 0.1, "seed": 9}, _X),
    "FieldEmbedding": (
        FieldEmbedding,
        {
            "vocabulary_sizes": [2, 3],
            "embedding_dim": 2,
            "l2_reg": 0.5,
            "l2_mode": "table",
            "stddev": 0.3,
            "seed": 4,
        },
        [_ids(_RNG, 2), _ids(_RNG, 3)],
    ),
    "LinearLogit": (
        LinearLogit,
        {"vocabulary_sizes": [2, 3], "dense_dim": 2, "l2_reg": 0.2, "l2_mode": "batch", "seed": 1},
        [_ids(_RNG, 2), _ids(_RNG, 3), _RNG.normal(size=(3, 2)).astype("float32")],
    ),
    "SelectFields": (SelectFields, {"indices": [3, 1]}, _X),
    "FMInteraction": (FMInteraction, {}, _X),
    "FwFMInteraction": (FwFMInteraction, {"l2_reg": 0.3, "seed": 2}, _X),
    "SumLogits": (
        SumLogits,
        {"task": "regression"},
        [np.ones((3, 1), "float32"), _RNG.normal(size=(3, 6)).astype("float32")],
    ),
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIPS))
def test_config_round_trip(name):
    """get_config -> from_config and Keras (de)serialisation give the same layer: same arguments,
    same seeded weights, same outputs and losses."""
    cls, kwargs, inputs = ROUND_TRIPS[name]
    layer = cls(name=f"original_{name}", **kwargs)
    out = numpy(layer(inputs))
    config = layer.get_config()
    assert {key: config[key] for key in kwargs} == kwargs
    for clone in (
        cls.from_config(config),
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer)),
    ):
        assert type(clone) is cls and clone.get_config() == config
        np.testing.assert_array_equal(numpy(clone(inputs)), out)
        assert [numpy(w).tolist() for w in clone.weights] == [
            numpy(w).tolist() for w in layer.weights
        ]
        assert [float(x) for x in clone.losses] == [float(x) for x in layer.losses]


@pytest.mark.parametrize(
    ("cls", "args", "kwargs", "message"),
    [
        (FEFMInteraction, (), {"symmetric": "yes"}, "`symmetric` must be a bool, received 'yes'"),
        (FEFMInteraction, (), {"l2_reg": -1.0}, "`l2_reg` must be >= 0.0, received -1.0"),
        (FEFMInteraction, (), {"l2_reg": "0.1"}, "`l2_reg` must be a number, received '0.1'"),
        (FEFMInteraction, (), {"seed": 1.5}, "`seed` must be an int or None, received 1.5"),
        (
            FieldEmbedding,
            ([3], 2),
            {"l2_mode": "rows"},
            r"`l2_mode` must be one of \('batch', 'table'\)",
        ),
        (FieldEmbedding, ([3, 0], 2), {}, r"`vocabulary_sizes`.*received \[3, 0\]"),
        (FieldEmbedding, ([], 2), {}, r"`vocabulary_sizes`.*received \[\]"),
        (FieldEmbedding, ([3], 0), {}, "`embedding_dim` must be an int >= 1, received 0"),
        (FieldEmbedding, ([3], 2), {"stddev": -1}, "`stddev` must be >= 0.0, received -1"),
        (FieldEmbedding, ([3], 2), {"l2_reg": float("nan")}, "`l2_reg` must be >= 0.0"),
        (LinearLogit, ([3],), {"dense_dim": -1}, "`dense_dim` must be an int >= 0, received -1"),
        (LinearLogit, ([],), {}, r"received vocabulary_sizes=\[\] and dense_dim=0"),
        (LinearLogit, ([1.5],), {}, r"`vocabulary_sizes`.*received \[1.5\]"),
        (
            SelectFields,
            ([],),
            {},
            r"`indices` must be a non-empty list of ints >= 0, received \[\]",
        ),
        (SelectFields, ([1, -1],), {}, r"`indices`.*received \[1, -1\]"),
        (SelectFields, ([0.5],), {}, r"`indices`.*received \[0.5\]"),
        (FwFMInteraction, (), {"l2_reg": -2}, "`l2_reg` must be >= 0.0, received -2"),
        (FwFMInteraction, (), {"seed": "1"}, "`seed` must be an int or None, received '1'"),
        (SumLogits, ("rank",), {}, r"`task` must be one of \('binary', 'regression'\), received"),
    ],
)
def test_bad_arguments_are_refused_eagerly(cls, args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(*args, **kwargs)


def test_fwfm_needs_two_fields():
    with pytest.raises(ValueError, match="FwFMInteraction needs at least 2 fields.*received 1"):
        FwFMInteraction()(np.ones((2, 1, 3), "float32"))
