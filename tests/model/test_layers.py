"""The layers against float64 NumPy references, plus config, save/load and argument checks."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

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


def fefm_reference(x: np.ndarray, u: np.ndarray, symmetric: bool) -> np.ndarray:
    """r_p = v_i^T W_p v_j with an explicit loop over the pairs, in float64."""
    x, u = x.astype("float64"), u.astype("float64")
    n = x.shape[1]
    out = []
    p = 0
    for i in range(n):
        for j in range(i + 1, n):
            w = u[p] + u[p].T if symmetric else u[p]
            out.append(np.einsum("bk,kl,bl->b", x[:, i], w, x[:, j]))
            p += 1
    return np.stack(out, axis=1)


def test_pair_order_is_lexicographic():
    left, right = pair_indices(4)
    assert list(zip(left, right, strict=True)) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


@pytest.mark.parametrize("implementation", ["pair_batched", "field_grouped"])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize(("n", "k"), [(2, 1), (3, 4), (4, 3), (5, 2), (8, 5)])
def test_fefm_matches_numpy_loop(implementation, symmetric, n, k):
    rng = np.random.default_rng(n * 10 + k)
    x = rng.normal(size=(7, n, k)).astype("float32")
    layer = FEFMInteraction(symmetric=symmetric, implementation=implementation, seed=3)
    out = keras.ops.convert_to_numpy(layer(x))
    u = keras.ops.convert_to_numpy(layer.field_matrices)
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
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), [[6, 16, 76]])


def test_fefm_gradients_agree_between_implementations():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(4, 6, 3)).astype("float32"))
    grads = []
    for implementation in ("pair_batched", "field_grouped"):
        layer = FEFMInteraction(implementation=implementation, symmetric=False, seed=5)
        layer.build(x.shape)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) ** 2)
        grads.append([g.numpy() for g in tape.gradient(loss, [x, layer.field_matrices.value])])
    for a, b in zip(grads[0], grads[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_fefm_l2_counts_u_not_w():
    layer = FEFMInteraction(l2_reg=0.5, seed=1)
    layer(np.ones((1, 3, 2), "float32"))
    u = keras.ops.convert_to_numpy(layer.field_matrices)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(layer.losses[0]), 0.5 * np.sum(u.astype("float64") ** 2), 1e-6)


def test_fefm_seed_reproduces_weights():
    a, b, c = (FEFMInteraction(seed=s) for s in (1, 1, 2))
    for layer in (a, b, c):
        layer.build((None, 4, 3))
    ua, ub, uc = (keras.ops.convert_to_numpy(x.field_matrices) for x in (a, b, c))
    np.testing.assert_array_equal(ua, ub)
    assert not np.allclose(ua, uc)
    assert np.abs(ua).max() <= 2.0  # truncated at two standard deviations


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"symmetric": "yes"}, "`symmetric` must be a bool, received 'yes'"),
        ({"implementation": "loop"}, "received 'loop'"),
        ({"l2_reg": -1.0}, "`l2_reg` must be a number >= 0, received -1.0"),
        ({"seed": 1.5}, "`seed` must be an int or None, received 1.5"),
    ],
)
def test_fefm_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        FEFMInteraction(**kwargs)


def test_fefm_needs_two_fields():
    with pytest.raises(ValueError, match="at least 2 fields.*received 1"):
        FEFMInteraction()(np.ones((2, 1, 3), "float32"))


def test_fefm_config_round_trip():
    layer = FEFMInteraction(symmetric=False, l2_reg=0.1, implementation="field_grouped", seed=9)
    config = layer.get_config()
    clone = FEFMInteraction.from_config(config)
    assert clone.get_config() == config
    assert config["symmetric"] is False and config["implementation"] == "field_grouped"
    x = np.random.default_rng(1).normal(size=(3, 4, 2)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)), keras.ops.convert_to_numpy(clone(x)), rtol=1e-6
    )


def test_fefm_functional_model_save_load(tmp_path):
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
    np.testing.assert_array_equal(out.numpy(), table[[[1, 4], [0, 2]]])
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


def test_field_embedding_initialiser_and_bad_arguments():
    layer = FieldEmbedding([1000], 8, seed=1)
    layer.build(None)
    std = float(np.std(keras.ops.convert_to_numpy(layer.table)))
    assert 0.9e-4 < std < 1.1e-4
    with pytest.raises(ValueError, match=r"`l2_mode` must be one of \('table', 'batch'\)"):
        FieldEmbedding([3], 2, l2_mode="rows")
    with pytest.raises(ValueError, match=r"vocabulary_sizes.*received \[3, 0\]"):
        FieldEmbedding([3, 0], 2)
    with pytest.raises(ValueError, match="`embedding_dim` must be an int >= 1, received 0"):
        FieldEmbedding([3], 0)


def test_linear_logit_numbers():
    layer = LinearLogit([2, 3], dense_dim=2, seed=1)
    layer.build(None)
    layer.table.assign(np.array([[1], [2], [10], [20], [30]], "float32"))
    layer.dense_kernel.assign(np.array([[0.5], [-1.0]], "float32"))
    out = layer([np.array([[1]]), np.array([[2]]), np.array([[2.0, 3.0]], "float32")])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), [[2 + 30 + 1 - 3]])


def test_fm_and_fwfm_numbers():
    x = np.random.default_rng(3).normal(size=(5, 4, 3))
    left, right = pair_indices(4)
    dots = np.einsum("bpk,bpk->bp", x[:, left], x[:, right])
    fm = keras.ops.convert_to_numpy(FMInteraction()(x.astype("float32")))
    np.testing.assert_allclose(fm[:, 0], dots.sum(axis=1), rtol=1e-5)
    fwfm = FwFMInteraction(seed=1)
    out = keras.ops.convert_to_numpy(fwfm(x.astype("float32")))
    r = keras.ops.convert_to_numpy(fwfm.pair_weights).astype("float64")
    np.testing.assert_allclose(out[:, 0], dots @ r, rtol=1e-5)


def test_select_fields_and_head():
    x = np.arange(24, dtype="float32").reshape(2, 3, 4)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(SelectFields([2, 0])(x)), x[:, [2, 0]])
    head = SumLogits("binary")
    out = head([np.array([[1.0]], "float32"), np.array([[0.5, -0.5]], "float32")])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), [[1 / (1 + np.exp(-1.0))]], 1e-6)
    with pytest.raises(
        ValueError, match="`task` must be 'binary' or 'regression', received 'rank'"
    ):
        SumLogits("rank")
