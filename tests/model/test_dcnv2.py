"""DCN-V2 (parallel) against a float64 NumPy reference built from its weights, and the same
configuration, validation and serialisation checks as the other models."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
from float64_reference import cross_net_v2_reference
from test_model import COLUMNS, DENSE, HIDDEN, SPARSE, VOCAB, K, embed, make_inputs, predict, w

from fefm_lab import DCNv2, build_model
from fefm_lab.layers import CrossNetV2

D0 = len(SPARSE) * K + sum(c.dimension for c in DENSE)  # x_0: 4 fields x k + 2 dense values


def randomise(model: keras.Model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.normal(scale=0.3, size=v.shape).astype("float32"))


def cross_weights(model: keras.Model) -> tuple[list[np.ndarray], list[np.ndarray]]:
    layer = model.get_layer("cross_net")
    kernels = [keras.ops.convert_to_numpy(k).astype("float64") for k in layer.kernels]
    biases = [keras.ops.convert_to_numpy(b).astype("float64") for b in layer.biases]
    return kernels, biases


def dcn_reference(model: keras.Model, x: dict, layers: int, hidden: tuple[int, ...]) -> np.ndarray:
    """sigmoid(b + w^T [x_L ; h]) in float64 from the model's weights."""
    v = embed(model, x, SPARSE)
    x0 = np.concatenate([v.reshape(len(v), -1), x["x"].astype("float64")], axis=1)
    kernels, biases = cross_weights(model)
    assert len(kernels) == layers
    parts = [cross_net_v2_reference(x0, kernels, biases)]
    if hidden:
        h = x0
        for i in range(len(hidden)):
            h = np.maximum(
                h @ w(model, f"dnn_hidden_{i}", "kernel") + w(model, f"dnn_hidden_{i}", "bias"), 0
            )
        parts.append(h)
    logit = np.concatenate(parts, 1) @ w(model, "dcn_logit", "kernel")[:, 0]
    return 1 / (1 + np.exp(-(w(model, "prediction", "bias")[0] + logit)))


@pytest.mark.parametrize(("layers", "hidden"), [(1, HIDDEN), (3, HIDDEN), (2, ())])
def test_dcnv2_against_float64_reference(layers, hidden):
    model = DCNv2(COLUMNS, COLUMNS, num_cross_layers=layers, dnn_hidden_units=hidden, seed=4)
    randomise(model, 5)
    x = make_inputs(COLUMNS, seed=6)
    np.testing.assert_allclose(
        predict(model, x), dcn_reference(model, x, layers, hidden), rtol=2e-5, atol=1e-7
    )
    dnn = sum(a * b + b for a, b in itertools.pairwise([D0, *hidden])) if hidden else 0
    head = D0 + (hidden[-1] if hidden else 0)
    # embeddings, L full-rank (d x d) kernels and biases, the DNN, the output layer, the bias;
    # no linear table
    assert model.count_params() == VOCAB * K + layers * (D0 * D0 + D0) + dnn + head + 1
    assert "linear" not in [layer.name for layer in model.layers]


def test_cross_layer_hand_worked():
    """x_0 = (1, 2), W = [[1, 1], [0, 2]], b = (0, 1): W x_0 + b = (3, 5), so
    x_1 = (1*3 + 1, 2*5 + 2) = (4, 12); a second layer with W = I, b = 0: x_0 ⊙ x_1 + x_1 =
    (4 + 4, 24 + 12) = (8, 36)."""
    layer = CrossNetV2(num_layers=2, seed=1)
    x0 = np.array([[1.0, 2.0]], "float32")
    layer.build(x0.shape)
    layer.kernels[0].assign(np.array([[1.0, 1.0], [0.0, 2.0]], "float32").T)
    layer.biases[0].assign(np.array([0.0, 1.0], "float32"))
    layer.kernels[1].assign(np.eye(2, dtype="float32"))
    layer.biases[1].assign(np.zeros(2, "float32"))
    assert keras.ops.convert_to_numpy(layer(x0)).tolist() == [[8.0, 36.0]]


def test_cross_layer_gradient_against_float64_finite_differences():
    layer = CrossNetV2(num_layers=2, seed=3, dtype="float64")
    x0 = np.random.default_rng(7).normal(size=(3, 4))
    layer.build(x0.shape)
    import tensorflow as tf

    x = tf.constant(x0)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(layer(x) ** 2)
    grad = tape.gradient(total, x).numpy()
    kernels = [keras.ops.convert_to_numpy(k) for k in layer.kernels]
    biases = [keras.ops.convert_to_numpy(b) for b in layer.biases]
    eps = 1e-6
    numeric = np.zeros_like(x0)
    for index in np.ndindex(*x0.shape):
        up, down = x0.copy(), x0.copy()
        up[index] += eps
        down[index] -= eps
        f_up = (cross_net_v2_reference(up, kernels, biases) ** 2).sum()
        f_down = (cross_net_v2_reference(down, kernels, biases) ** 2).sum()
        numeric[index] = (f_up - f_down) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_layer_config_round_trip_and_functional_use(tmp_path):
    layer = CrossNetV2(num_layers=2, l2_reg=1e-3, seed=9, name="cn")
    config = layer.get_config()
    assert {k: config[k] for k in ("num_layers", "l2_reg", "seed")} == {
        "num_layers": 2,
        "l2_reg": 1e-3,
        "seed": 9,
    }
    clone = CrossNetV2.from_config(config)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, clone(inputs))
    assert [tuple(v.shape) for v in model.weights] == [(4, 4), (4, 4), (4,), (4,)]
    assert len(model.losses) == 2  # L2 on each kernel, none on the biases


def test_save_load_round_trip(tmp_path):
    model = DCNv2(COLUMNS, COLUMNS, dnn_hidden_units=HIDDEN, num_cross_layers=2, dnn_dropout=0.2)
    randomise(model, 11)
    x = make_inputs(COLUMNS, seed=12)
    model.save(tmp_path / "dcnv2.keras")
    loaded = keras.saving.load_model(tmp_path / "dcnv2.keras")
    np.testing.assert_array_equal(predict(model, x), predict(loaded, x))


def test_seeds_reproduce_and_differ():
    a, b, c = (DCNv2(COLUMNS, COLUMNS, seed=s) for s in (3, 3, 4))
    for x, y in zip(
        a.get_layer("cross_net").kernels, b.get_layer("cross_net").kernels, strict=True
    ):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y))
    assert not np.allclose(
        keras.ops.convert_to_numpy(a.get_layer("cross_net").kernels[0]),
        keras.ops.convert_to_numpy(c.get_layer("cross_net").kernels[0]),
    )


def test_l2_on_cross_kernels_reaches_model_losses():
    model = DCNv2(COLUMNS, COLUMNS, dnn_hidden_units=(), l2_reg_dnn=0.5, num_cross_layers=2)
    kernels, _ = cross_weights(model)
    expected = 0.5 * sum((k**2).sum() for k in kernels)
    cross_losses = model.get_layer("cross_net").losses
    np.testing.assert_allclose(
        float(sum(keras.ops.convert_to_numpy(v) for v in cross_losses)), expected, rtol=1e-5
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_cross_layers": 0}, "`num_cross_layers` must be an int >= 1, received 0"),
        ({"num_cross_layers": 2.0}, "`num_cross_layers` must be an int >= 1, received 2.0"),
        ({"use_linear": True}, "model 'dcnv2' does not take parameter 'use_linear'"),
        ({"fm_group": ["default"]}, "model 'dcnv2' does not take parameter 'fm_group'"),
        ({"dnn_dropout": 1.0}, r"`dnn_dropout` must be in \[0.0, 1.0\)"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model("dcnv2", COLUMNS, COLUMNS, **kwargs)


def test_layer_refuses_bad_arguments():
    with pytest.raises(ValueError, match="`num_layers` must be an int >= 1, received 0"):
        CrossNetV2(num_layers=0)
    with pytest.raises(ValueError, match=r"`l2_reg` must be >= 0.0, received -1"):
        CrossNetV2(num_layers=1, l2_reg=-1)
    with pytest.raises(ValueError, match=r"CrossNetV2 expects input of shape \(batch, d\)"):
        CrossNetV2(num_layers=1).build((None, 3, 4))
