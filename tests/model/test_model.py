"""DeepFEFM and the comparison models against float64 NumPy references built from their weights."""

from __future__ import annotations

import inspect
import itertools

import keras
import numpy as np
import pytest
from float64_reference import fefm_reference, pair_dots

from fefm_lab import (
    FEFM,
    FM,
    LR,
    DeepFEFM,
    DeepFM,
    DenseFeat,
    FmFM,
    FwFM,
    SparseFeat,
    build_model,
)
from fefm_lab.model import MODEL_FAMILY, MODELS, model_parameters

K = 3
SPARSE = [
    SparseFeat("a", 3, K),
    SparseFeat("b", 4, K),
    SparseFeat("c", 2, K),
    SparseFeat("d", 5, K),
]
DENSE = [DenseFeat("x", 2)]
COLUMNS = [*SPARSE, *DENSE]
VOCAB = sum(c.vocabulary_size for c in SPARSE)
D_DENSE = 2
HIDDEN = (5, 4)


def make_inputs(columns, batch: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = {}
    for c in columns:
        if isinstance(c, SparseFeat):
            x[c.name] = rng.integers(0, c.vocabulary_size, (batch, 1)).astype("int32")
        else:
            x[c.name] = rng.normal(size=(batch, c.dimension)).astype("float32")
    return x


def randomise(model: keras.Model, seed: int = 1) -> None:
    """Every weight non-zero, so each term shows up in the output."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.normal(scale=0.4, size=v.shape).astype("float32"))


def w(model: keras.Model, layer: str, attr: str) -> np.ndarray:
    return keras.ops.convert_to_numpy(getattr(model.get_layer(layer), attr)).astype("float64")


def embed(model, x, columns, layer="feature_embedding") -> np.ndarray:
    table = w(model, layer, "table")
    offsets = np.cumsum([0] + [c.vocabulary_size for c in columns])
    return np.stack([table[offsets[i] + x[c.name][:, 0]] for i, c in enumerate(columns)], axis=1)


def linear_ref(model, x, sparse, dense) -> np.ndarray:
    table = w(model, "linear", "table")[:, 0]
    offsets = np.cumsum([0] + [c.vocabulary_size for c in sparse])
    out = sum(table[offsets[i] + x[c.name][:, 0]] for i, c in enumerate(sparse))
    if dense:
        out = (
            out
            + np.concatenate([x[c.name] for c in dense], 1)
            @ w(model, "linear", "dense_kernel")[:, 0]
        )
    return out


def dnn_ref(model, parts: list[np.ndarray], layers: int) -> np.ndarray:
    h = np.concatenate(parts, axis=1)
    for i in range(layers):
        h = np.maximum(
            h @ w(model, f"dnn_hidden_{i}", "kernel") + w(model, f"dnn_hidden_{i}", "bias"), 0
        )
    return h @ w(model, "dnn_logit", "kernel")[:, 0]


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def predict(model, x) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))[:, 0].astype("float64")


def dnn_size(n_in: int, units=HIDDEN) -> int:
    sizes = [n_in, *units]
    return sum(a * b + b for a, b in itertools.pairwise(sizes)) + sizes[-1]


FLAGS = ("use_fefm", "use_linear", "exclude_feature_embed_in_dnn", "use_fefm_embed_in_dnn")
COMBOS = [
    (dict(zip(FLAGS, values, strict=True)), hidden)
    for values in itertools.product([True, False], repeat=4)
    for hidden in (HIDDEN, ())
]


def combo_error(flags: dict, hidden: tuple) -> str | None:
    if not (flags["use_linear"] or flags["use_fefm"] or hidden):
        return "nothing left in the logit: use_linear=False, use_fefm=False and dnn_hidden_units=()"
    if hidden and flags["exclude_feature_embed_in_dnn"] and not flags["use_fefm_embed_in_dnn"]:
        return (
            "the DNN has no input: exclude_feature_embed_in_dnn=True .* use_fefm_embed_in_dnn=False"
        )
    return None


@pytest.mark.parametrize(("flags", "hidden"), COMBOS)
def test_deepfefm_every_flag_combination(flags, hidden):
    error = combo_error(flags, hidden)
    if error:
        with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(")", r"\)")):
            DeepFEFM(COLUMNS, COLUMNS, dnn_hidden_units=hidden, **flags)
        return
    model = DeepFEFM(COLUMNS, COLUMNS, dnn_hidden_units=hidden, seed=3, **flags)
    randomise(model)
    x = make_inputs(COLUMNS)
    fefm_used = flags["use_fefm"] or (bool(hidden) and flags["use_fefm_embed_in_dnn"])
    features_in_dnn = bool(hidden) and not flags["exclude_feature_embed_in_dnn"]

    v = embed(model, x, SPARSE) if fefm_used or features_in_dnn else None
    logit = w(model, "prediction", "bias")[0] * np.ones(6)
    if flags["use_linear"]:
        logit = logit + linear_ref(model, x, SPARSE, DENSE)
    r = fefm_reference(v, w(model, "fefm", "field_matrices")) if fefm_used else None
    if flags["use_fefm"]:
        logit = logit + r.sum(1)
    n_dnn_in = 0
    if hidden:
        parts = []
        if features_in_dnn:
            parts += [v.reshape(6, -1), x["x"]]
        if flags["use_fefm_embed_in_dnn"]:
            parts.append(r)
        logit = logit + dnn_ref(model, parts, len(hidden))
        n_dnn_in = sum(p.shape[1] for p in parts)
    np.testing.assert_allclose(predict(model, x), sigmoid(logit), rtol=1e-5, atol=1e-7)

    pairs = 6
    expected = 1 + (VOCAB * K if v is not None else 0)
    expected += (VOCAB + D_DENSE) if flags["use_linear"] else 0
    expected += pairs * K * K if fefm_used else 0
    expected += dnn_size(n_dnn_in) if hidden else 0
    assert model.count_params() == expected


def test_paper_parameter_formula_for_full_model():
    model = DeepFEFM(COLUMNS, COLUMNS, dnn_hidden_units=HIDDEN)
    dnn = (4 * K + D_DENSE + 6) * 5 + 5 + 5 * 4 + 4 + 4
    assert model.count_params() == VOCAB * K + VOCAB + D_DENSE + 6 * K * K + dnn + 1


def test_fefm_and_fmfm_shallow_models():
    x = make_inputs(COLUMNS, seed=4)
    for builder, symmetric in ((FEFM, True), (FmFM, False)):
        model = builder(COLUMNS, COLUMNS, seed=2)
        randomise(model, 5)
        v = embed(model, x, SPARSE)
        r = fefm_reference(v, w(model, "fefm", "field_matrices"), symmetric)
        logit = w(model, "prediction", "bias")[0] + linear_ref(model, x, SPARSE, DENSE) + r.sum(1)
        np.testing.assert_allclose(predict(model, x), sigmoid(logit), rtol=1e-5)
        assert model.count_params() == VOCAB * K + VOCAB + D_DENSE + 6 * K * K + 1
    assert model.get_layer("fefm").symmetric is False


def test_lr_fm_fwfm_deepfm_against_numpy():
    x = make_inputs(COLUMNS, seed=5)
    bias_and_linear = {}
    for name, builder in (("lr", LR), ("fm", FM), ("fwfm", FwFM), ("deepfm", DeepFM)):
        kwargs = {"dnn_hidden_units": HIDDEN} if name == "deepfm" else {}
        model = builder(COLUMNS, COLUMNS, seed=1, **kwargs)
        randomise(model, 7)
        logit = w(model, "prediction", "bias")[0] + linear_ref(model, x, SPARSE, DENSE)
        bias_and_linear[name] = logit
        base = VOCAB + D_DENSE + 1
        if name == "lr":
            assert model.count_params() == base
        else:
            v = embed(model, x, SPARSE)
            dots = pair_dots(v)
            if name == "fwfm":
                logit = logit + dots @ w(model, "fwfm", "pair_weights")
                assert model.count_params() == base + VOCAB * K + 6
            else:
                logit = logit + dots.sum(1)
            if name == "fm":
                assert model.count_params() == base + VOCAB * K
            if name == "deepfm":
                logit = logit + dnn_ref(model, [v.reshape(6, -1), x["x"]], len(HIDDEN))
                assert model.count_params() == base + VOCAB * K + dnn_size(VOCAB * 0 + 4 * K + 2)
        np.testing.assert_allclose(predict(model, x), sigmoid(logit), rtol=1e-5, atol=1e-7)


def test_fm_group_selects_fields():
    columns = [
        SparseFeat("a", 3, K),
        SparseFeat("b", 4, K, group_name="user"),
        SparseFeat("c", 2, K),
        SparseFeat("d", 5, K, group_name="user"),
        SparseFeat("e", 3, K, group_name="user"),
    ]
    x = make_inputs(columns, seed=6)
    assert DeepFEFM(columns, columns).get_layer("fefm").field_matrices.shape == (1, K, K)
    both = DeepFEFM(columns, columns, fm_group=["default", "user"])
    assert both.get_layer("fefm").field_matrices.shape == (10, K, K)
    model = DeepFEFM(columns, columns, fm_group=("user",), dnn_hidden_units=HIDDEN)
    randomise(model, 2)
    v = embed(model, x, columns)
    r = fefm_reference(v[:, [1, 3, 4]], w(model, "fefm", "field_matrices"))
    linear = linear_ref(model, x, columns, [])
    logit = w(model, "prediction", "bias")[0] + linear + r.sum(1)
    logit = logit + dnn_ref(model, [v.reshape(6, -1), r], len(HIDDEN))
    np.testing.assert_allclose(predict(model, x), sigmoid(logit), rtol=1e-5)
    # A shallow FEFM over a group embeds only that group's columns.
    shallow = FEFM(columns, columns, fm_group="user")
    assert shallow.get_layer("feature_embedding").table.shape == (4 + 5 + 3, K)
    with pytest.raises(
        ValueError, match=r"at least two categorical fields in `fm_group`; found \[\]"
    ):
        DeepFEFM(columns, columns, fm_group=("items",))
    with pytest.raises(ValueError, match=r"FEFM \(use_fefm_embed_in_dnn=True\) needs at least two"):
        DeepFEFM(columns[:2], columns[:2], use_fefm=False)


def test_embedding_dims_must_match_in_fm_group():
    columns = [SparseFeat("a", 3, 4), SparseFeat("b", 3, 2), SparseFeat("c", 3, 4)]
    with pytest.raises(ValueError, match="must share one embedding_dim, found a=4, b=2, c=4"):
        DeepFEFM(columns, columns)
    # Outside the FEFM fields another size is fine: one table per size feeds the DNN.
    mixed = [*columns[:1], SparseFeat("b", 3, 2, group_name="dnn_only"), columns[2]]
    model = DeepFEFM(mixed, mixed, dnn_hidden_units=(3,))
    assert model.get_layer("feature_embedding").table.shape == (3, 2)
    assert model.get_layer("feature_embedding_1").table.shape == (6, 4)
    dnn_in = 2 + 2 * 4 + 1
    assert model.count_params() == 3 * 2 + 6 * 4 + 9 + 16 + dnn_in * 3 + 3 + 3 + 1


def test_probabilities_and_regression_training():
    x = make_inputs(COLUMNS, batch=200, seed=8)
    binary = DeepFEFM(COLUMNS, COLUMNS, dnn_hidden_units=HIDDEN)
    randomise(binary, 3)
    p = predict(binary, x)
    assert np.all((p > 0) & (p < 1))
    model = DeepFEFM(COLUMNS, COLUMNS, dnn_hidden_units=HIDDEN, task="regression")
    model.compile(keras.optimizers.Adam(0.1), loss="mse")
    history = model.fit(x, np.full((200, 1), 3.0), batch_size=20, epochs=5, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert predict(model, x).mean() > 1.5  # a probability could not get here


def test_l2_reaches_model_losses_in_both_modes():
    x = make_inputs(COLUMNS, seed=9)
    values = {}
    for mode in ("batch", "table"):
        model = DeepFEFM(
            COLUMNS,
            COLUMNS,
            dnn_hidden_units=(),
            l2_reg_linear=0.0,
            l2_reg_embedding_feat=0.1,
            l2_reg_embedding_field=0.0,
            l2_mode=mode,
        )
        randomise(model, 4)
        model(x, training=True)
        values[mode] = float(sum(model.losses))
        table = w(model, "feature_embedding", "table")
    v = embed(model, x, SPARSE)
    np.testing.assert_allclose(values["batch"], 0.1 * (v**2).sum(axis=(1, 2)).mean(), rtol=1e-5)
    np.testing.assert_allclose(values["table"], 0.1 * (table**2).sum(), rtol=1e-5)
    full = DeepFEFM(COLUMNS, COLUMNS, dnn_hidden_units=HIDDEN, l2_reg_dnn=0.01, l2_mode="table")
    full(x)
    # embeddings, field matrices, linear table, dense kernel, two hidden kernels
    assert len(full.losses) == 6


def test_seeds_reproduce_and_differ():
    x = make_inputs(COLUMNS, seed=10)
    a, b, c = (DeepFEFM(COLUMNS, COLUMNS, dnn_hidden_units=HIDDEN, seed=s) for s in (7, 7, 8))
    for va, vb in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(va), keras.ops.convert_to_numpy(vb)
        )
    np.testing.assert_array_equal(predict(a, x), predict(b, x))
    for name, attr in (
        ("feature_embedding", "table"),
        ("fefm", "field_matrices"),
        ("dnn_hidden_0", "kernel"),
    ):
        assert not np.allclose(w(a, name, attr), w(c, name, attr))
    table = w(a, "feature_embedding", "table")
    assert not np.allclose(table[0], table[3])  # columns a and b do not start with equal rows
    assert np.all(w(a, "linear", "table") == 0)


def test_save_load_round_trip(tmp_path):
    columns = [*COLUMNS, SparseFeat("u", 4, K, group_name="user")]
    model = DeepFEFM(columns, columns, dnn_hidden_units=HIDDEN, dnn_use_bn=True, dnn_dropout=0.3)
    randomise(model, 11)
    x = make_inputs(columns, seed=12)
    path = tmp_path / "deepfefm.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(predict(model, x), predict(loaded, x))
    for name, builder in (("fwfm", FwFM), ("lr", LR)):
        other = builder(COLUMNS, COLUMNS)
        randomise(other, 13)
        other.save(tmp_path / f"{name}.keras")
        back = keras.saving.load_model(tmp_path / f"{name}.keras")
        np.testing.assert_array_equal(predict(other, x), predict(back, x))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dnn_dropout": 1.0}, r"`dnn_dropout` must be in \[0.0, 1.0\), received 1.0"),
        ({"dnn_dropout": -0.1}, r"`dnn_dropout` must be in \[0.0, 1.0\), received -0.1"),
        ({"l2_reg_dnn": -1e-3}, "`l2_reg_dnn` must be >= 0.0, received -0.001"),
        ({"l2_reg_embedding_field": -1}, "`l2_reg_embedding_field` must be >= 0.0, received -1"),
        (
            {"task": "ranking"},
            r"`task` must be one of \('binary', 'regression'\), received 'ranking'",
        ),
        ({"dnn_activation": "swishy"}, "`dnn_activation` must name a Keras activation.*'swishy'"),
        ({"l2_mode": "rows"}, r"`l2_mode` must be one of \('batch', 'table'\), received 'rows'"),
        ({"dnn_hidden_units": (4, 0)}, r"`dnn_hidden_units` must be a list of ints >= 1.*\(4, 0\)"),
        ({"use_fefm": "yes"}, "`use_fefm` must be true or false, received 'yes'"),
        ({"seed": None}, "`seed` must be an int, received None"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeepFEFM(COLUMNS, COLUMNS, **kwargs)


def test_bad_columns():
    with pytest.raises(ValueError, match="must hold SparseFeat / DenseFeat objects, received 'a'"):
        DeepFEFM(["a"], COLUMNS)
    clash = [SparseFeat("a", 9, K), *SPARSE[1:]]
    with pytest.raises(ValueError, match="feature column 'a' is defined twice differently"):
        DeepFEFM(clash, COLUMNS)
    with pytest.raises(ValueError, match="`use_linear=True` needs at least one column"):
        DeepFEFM([], COLUMNS)


def test_build_model_names_and_keys():
    for name in ("deepfefm", "fefm", "fmfm", "fm", "fwfm", "deepfm", "dcnv2", "lr"):
        model = build_model(name, COLUMNS, COLUMNS, seed=1)
        assert model.output_shape == (None, 1)
    with pytest.raises(ValueError, match=r"unknown model 'ffm'; expected one of \['dcnv2', 'deep"):
        build_model("ffm", COLUMNS, COLUMNS)
    with pytest.raises(ValueError, match="model 'fm' does not take parameter 'dnn_dropout'"):
        build_model("fm", COLUMNS, COLUMNS, dnn_dropout=0.1)
    # Hydra passes lists: they are accepted where the builders expect tuples.
    model = build_model("deepfefm", COLUMNS, COLUMNS, dnn_hidden_units=[4], fm_group=["default"])
    assert model.get_layer("dnn_hidden_0").units == 4
    assert "symmetric" in model_parameters("deepfefm") and "symmetric" not in model_parameters(
        "fmfm"
    )


def planted_interaction_data(rows: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Labels from two field-pair interactions with no first-order signal: LR cannot fit them."""
    rng = np.random.default_rng(seed)
    vocab, fields = 8, 5
    ids = rng.integers(0, vocab, (rows, fields))
    logit = np.zeros(rows)
    weights = np.random.default_rng(100)
    for i, j in ((0, 1), (2, 3)):
        a, b = weights.normal(size=(vocab, 2)), weights.normal(size=(vocab, 2))
        m = a @ b.T
        m = m - m.mean(0, keepdims=True) - m.mean(1, keepdims=True) + m.mean()
        logit += 2.0 * m[ids[:, i], ids[:, j]]
    labels = (rng.random(rows) < sigmoid(logit)).astype("float32")[:, None]
    return {f"f{i}": ids[:, i : i + 1].astype("int32") for i in range(fields)}, labels


def test_fefm_learns_planted_interactions_lr_cannot():
    from sklearn.metrics import roc_auc_score

    columns = [SparseFeat(f"f{i}", 8, 4) for i in range(5)]
    x_train, y_train = planted_interaction_data(16000, seed=1)
    x_test, y_test = planted_interaction_data(4000, seed=2)
    auc = {}
    for name, model in (("lr", LR(columns, columns)), ("fefm", FEFM(columns, columns))):
        model.compile(keras.optimizers.Adam(0.02), loss="binary_crossentropy")
        model.fit(x_train, y_train, batch_size=256, epochs=4, verbose=0)
        auc[name] = roc_auc_score(
            y_test[:, 0], model.predict(x_test, batch_size=4000, verbose=0)[:, 0]
        )
    assert auc["fefm"] >= auc["lr"] + 0.05, auc


def test_inputs_are_taken_by_name_extra_features_ignored(tmp_path):
    """A batch holding more features than the model uses must not shift its inputs."""
    model = FEFM(SPARSE[:2], SPARSE[:2])
    randomise(model, 14)
    x = make_inputs(COLUMNS, seed=15)
    only = {name: x[name] for name in ("a", "b")}
    np.testing.assert_array_equal(predict(model, x), predict(model, only))
    model.save(tmp_path / "fefm.keras")
    loaded = keras.saving.load_model(tmp_path / "fefm.keras")
    np.testing.assert_array_equal(predict(loaded, x), predict(model, only))


REFERENCE_ORDER = [
    "linear_feature_columns",
    "dnn_feature_columns",
    "fm_group",
    "use_fefm",
    "dnn_hidden_units",
    "l2_reg_linear",
    "l2_reg_embedding_feat",
    "l2_reg_embedding_field",
    "l2_reg_dnn",
    "seed",
    "dnn_dropout",
    "exclude_feature_embed_in_dnn",
    "use_linear",
    "use_fefm_embed_in_dnn",
    "dnn_activation",
    "dnn_use_bn",
    "task",
    "symmetric",
    "l2_mode",
]


def test_deepfefm_keeps_the_reference_signature():
    """DeepCTR's order and defaults (fm_group, symmetric and l2_mode added), positional use too."""
    signature = inspect.signature(DeepFEFM)
    assert list(signature.parameters) == REFERENCE_ORDER
    defaults = {k: p.default for k, p in signature.parameters.items()}
    assert defaults["dnn_hidden_units"] == (256, 128, 64) and defaults["seed"] == 1024
    assert defaults["l2_reg_linear"] == defaults["l2_reg_embedding_feat"] == 1e-5
    assert defaults["use_fefm_embed_in_dnn"] is True and defaults["task"] == "binary"
    assert DeepFEFM.__name__ == "DeepFEFM" and "Pande 2020" in DeepFEFM.__doc__
    shallow = DeepFEFM(COLUMNS, COLUMNS, ("default",), True, ())  # fm_group, use_fefm, no DNN
    assert shallow.name == "fefm" and not any(x.name.startswith("dnn") for x in shallow.layers)
    with pytest.raises(TypeError, match="unexpected keyword argument 'dnn_dropout'"):
        FM(COLUMNS, COLUMNS, dnn_dropout=0.1)


def test_every_builder_takes_what_its_config_schema_lists():
    """The keywords come from the schema dataclasses (plus `seed`), in DeepFEFM's order."""
    from fefm_lab.config.schema import MODEL_SCHEMAS
    from fefm_lab.config.schema import model_parameters as schema_parameters

    assert sorted(MODEL_FAMILY) == sorted(MODEL_SCHEMAS)
    assert model_parameters("deepfefm") == REFERENCE_ORDER[2:]
    assert model_parameters("lr") == ["l2_reg_linear", "seed", "task", "l2_mode"]
    for name in MODEL_FAMILY:
        keys = model_parameters(name)
        assert set(keys) == {"seed", *schema_parameters(name)}, name
        assert keys == [key for key in [*REFERENCE_ORDER[2:], "num_cross_layers"] if key in keys]
        signature = list(inspect.signature(MODELS[name]).parameters)
        assert signature == ["linear_feature_columns", "dnn_feature_columns", *keys], name
    assert inspect.signature(LR).parameters["dnn_feature_columns"].default == ()
    assert FmFM(COLUMNS, COLUMNS).name == "fmfm"


def test_every_builder_names_the_one_line_change_for_fast_keras_training():
    """Each builder's help says to compile with fefm-lab's Keras optimizer, which exists."""
    import fefm_lab

    for name, builder in MODELS.items():
        assert "model.compile(fefm_lab.RowSparseAdagrad(0.01), 'binary_crossentropy')" in (
            builder.__doc__
        ), name
    assert issubclass(fefm_lab.RowSparseAdagrad, keras.optimizers.Adagrad)
    assert issubclass(fefm_lab.RowSparseAdam, keras.optimizers.Adam)


@pytest.mark.parametrize(
    ("builder", "kwargs", "message"),
    [
        (
            DeepFM,
            {"dnn_hidden_units": ()},
            r"DeepFM needs `dnn_hidden_units` \(non-empty\); without a DNN use FM",
        ),
        (
            FM,
            {"fm_group": "user"},
            r"FM needs at least two categorical fields in `fm_group`; found \[\]",
        ),
        (FwFM, {"fm_group": "user"}, r"FwFM needs at least two categorical fields"),
        (DeepFM, {"fm_group": "user"}, r"DeepFM needs at least two categorical fields"),
        (FEFM, {"fm_group": "user"}, r"FEFM \(use_fefm=True\) needs at least two categorical"),
        (
            FM,
            {"fm_group": []},
            r"`fm_group` must be a non-empty list of group names, received \[\]",
        ),
        (FwFM, {"l2_reg_embedding_field": float("nan")}, "`l2_reg_embedding_field` must be >= 0.0"),
        (DeepFM, {"dnn_use_bn": 1}, "`dnn_use_bn` must be true or false, received 1"),
        (DeepFM, {"dnn_hidden_units": 64}, "`dnn_hidden_units` must be a list of ints >= 1"),
        (
            LR,
            {"l2_mode": "rows"},
            r"`l2_mode` must be one of \('batch', 'table'\), received 'rows'",
        ),
    ],
)
def test_comparison_models_refuse_what_they_cannot_build(builder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        builder(COLUMNS, COLUMNS, **kwargs)


def test_deepfefm_step_is_the_same_with_and_without_xla():
    """`trainer.jit_compile` XLA-compiles forward + backward, FEFM's hand-written gradient with
    it: one step from the same weights gives the same loss and weights either way."""
    import tensorflow as tf

    from fefm_lab.training import Trainer, TrainerConfig

    x = {name: tf.constant(v) for name, v in make_inputs(COLUMNS, batch=32, seed=4).items()}
    y = tf.constant(np.random.default_rng(5).integers(0, 2, (32, 1)), tf.float32)
    steps = []
    for jit_compile in (False, True):
        model = DeepFEFM(COLUMNS, COLUMNS, dnn_hidden_units=HIDDEN, seed=2)
        randomise(model, 6)
        trainer = Trainer(model, TrainerConfig(verbose=False, jit_compile=jit_compile))
        loss = float(trainer.train_step(x, y))
        steps.append((loss, [keras.ops.convert_to_numpy(v) for v in model.weights]))
    (loss, weights), (xla_loss, xla_weights) = steps
    assert abs(loss - xla_loss) <= 1e-6 * abs(loss)
    for plain, xla in zip(weights, xla_weights, strict=True):
        np.testing.assert_allclose(xla, plain, rtol=1e-5, atol=1e-6)


def test_deepfefm_step_is_the_same_on_the_kernel_and_the_tensorflow_ops(fefm_kernel, monkeypatch):
    """One training step (forward, backward, AdaGrad) from the same weights on the fused FEFM
    kernel and on the TensorFlow ops (FEFM_LAB_KERNELS=0): the same loss and weights to float
    rounding, and the kernel's graph really holds the fused op."""
    import tensorflow as tf

    from fefm_lab import kernels
    from fefm_lab.training import Trainer, TrainerConfig

    x = {name: tf.constant(v) for name, v in make_inputs(COLUMNS, batch=45, seed=7).items()}
    y = tf.constant(np.random.default_rng(8).integers(0, 2, (45, 1)), tf.float32)
    steps = []
    for switch in ("1", "0"):
        monkeypatch.setenv(kernels.SWITCH_VARIABLE, switch)
        model = DeepFEFM(COLUMNS, COLUMNS, dnn_hidden_units=HIDDEN, seed=2)
        randomise(model, 6)
        before = [keras.ops.convert_to_numpy(v) for v in model.weights]
        trainer = Trainer(model, TrainerConfig(verbose=False))
        loss = float(trainer.train_step(x, y))
        after = [keras.ops.convert_to_numpy(v) for v in model.weights]
        graph = trainer.train_step.get_concrete_function(x, y).graph.as_graph_def()
        types = {node.op for node in graph.node}  # and inside the functions it calls:
        types |= {node.op for function in graph.library.function for node in function.node_def}
        fused = types & {"FefmScores", "FefmScoresGrad"}
        steps.append((loss, before, after, fused))
    (loss, before, after, fused), (ops_loss, ops_before, ops_after, ops_fused) = steps
    assert fused == {"FefmScores", "FefmScoresGrad"} and ops_fused == set()
    for a, b in zip(before, ops_before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert abs(loss - ops_loss) <= 1e-6 * abs(loss)
    moved = 0
    for kernel, ops, start in zip(after, ops_after, before, strict=True):
        np.testing.assert_allclose(kernel, ops, rtol=1e-5, atol=1e-6)
        moved += int(not np.array_equal(ops, start))
    assert moved >= len(before) - 1  # the step changed the weights it is compared on
