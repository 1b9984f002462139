"""DeepFEFM (Pande 2020) and the comparison models: one table of parts feeding one builder.

Every model of the family is

    logit = b + [use_linear] linear + [use_fefm] interaction + [DNN] DNN logit,

and differs only in its parts (`MODEL_FAMILY`): the second-order interaction over the fields of
`fm_group` (FEFM r_p = v_i^T W_p v_j with W_p = U_p + U_p^T, or U_p alone for FmFM; FM's
<v_i, v_j>; FwFM's w_p <v_i, v_j>; none for LR), whether it has a DNN, and which parameters it
takes (`PARAMETERS`; a parameter a model does not take is held at the value that switches its
part off). The DNN reads the flattened feature embeddings and dense values (unless
`exclude_feature_embed_in_dnn`) and DeepFEFM's P pair scores r (if `use_fefm_embed_in_dnn`).

Every builder returns an uncompiled functional `keras.Model` whose input is a dict of named
arrays (`SparseFeat` -> int (B, 1), `DenseFeat` -> float (B, dimension)) and whose output is
(B, 1): a probability (`task="binary"`) or an unbounded value (`task="regression"`).
Regularisation reaches `model.losses`, so `fit` and a custom loop
(`loss = data_loss + sum(model.losses)`) both see it. `l2_mode="batch"` puts L2 only on the
table rows each example looks up (see `FieldEmbedding`); `"table"` on whole tables, as the
reference does. Configurations with nothing in the logit, a DNN without input or an interaction
over fewer than two fields raise a ValueError that names the flags.

Seeds: every initialiser gets its own seed derived from `seed` (see `_SEED_OFFSETS`), so one seed
reproduces a model exactly and no two tables start equal.

DCN-V2 (Wang et al. 2021) is the one member with a cross network: x_0 = [flattened feature
embeddings, dense values] feeds L cross layers x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l (full-rank
W_l, `CrossNetV2`) and, in parallel, the DNN h = DNN(x_0); the logit is b + w^T [x_L ; h]. It is
built in the parallel structure: the setting the open benchmark (BARS) reports for DCN-V2 on
Criteo_x1 and Avazu_x1, and the paper's best on Criteo; `dnn_hidden_units=()` leaves the cross
network alone (the paper's CrossNet-V2). Like the paper, it has no linear or FM term.

Training with Keras: compile with `fefm_lab.RowSparseAdagrad` (or `RowSparseAdam`) instead of
`keras.optimizers.Adagrad` (`TRAINING_NOTE`): the same arguments, a real Keras optimizer, and the
row-sparse compiled updates fefm-lab's own trainer uses.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import keras

from fefm_lab.config.schema import family_defaults
from fefm_lab.config.schema import model_parameters as schema_parameters
from fefm_lab.features import DenseFeat, FeatureColumn, SparseFeat
from fefm_lab.layers import (
    L2_MODES,
    TASKS,
    CrossNetV2,
    FEFMInteraction,
    FieldEmbedding,
    FMInteraction,
    FwFMInteraction,
    LinearLogit,
    SelectFields,
    SumLogits,
    check_choice,
    check_number,
)

EMBEDDING_STDDEV = 1e-4
# The one line that makes `model.fit` about as fast as fefm-lab's own trainer (issue 23)
TRAINING_NOTE = (
    "Train it with Keras as usual, but compile with fefm-lab's optimizer: "
    "`model.compile(fefm_lab.RowSparseAdagrad(0.01), 'binary_crossentropy')` "
    "instead of `keras.optimizers.Adagrad(0.01)`. It is Keras's AdaGrad (same arguments, "
    "schedules, saving) whose updates touch only the embedding rows a batch looked up, in one "
    "compiled op per variable (one pass for dense weights): Keras's own AdaGrad makes several "
    "passes over every variable, whole embedding tables included, every step."
)

_SEED_OFFSETS = {
    "embedding": 0,
    "pair": 1,
    "linear": 2,
    "dnn_output": 3,
    "dnn_hidden": 10,
    "cross": 100,
}


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be true or false, received {value!r}")


def _non_negative(name: str, value: Any) -> None:
    check_number(name, value, 0.0)


def _dropout(name: str, value: Any) -> None:
    check_number(name, value, 0.0, 1.0)


def _seed(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"`{name}` must be an int, received {value!r}")


def _hidden_units(name: str, value: Any) -> None:
    if not isinstance(value, list | tuple) or any(
        isinstance(u, bool) or not isinstance(u, int) or u < 1 for u in value
    ):
        raise ValueError(
            f"`{name}` must be a list of ints >= 1 (empty for no DNN), received {value!r}"
        )


def _cross_layers(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be an int >= 1, received {value!r}")


def _activation(name: str, value: Any) -> None:
    try:
        if not isinstance(value, str):
            raise ValueError
        keras.activations.get(value)
    except (ValueError, TypeError):
        raise ValueError(
            f"`{name}` must name a Keras activation (e.g. 'relu'), received {value!r}"
        ) from None


def _groups(name: str, value: Any) -> None:
    groups = (value,) if isinstance(value, str) else value
    if not (
        isinstance(groups, list | tuple) and groups and all(isinstance(g, str) for g in groups)
    ):
        raise ValueError(f"`{name}` must be a non-empty list of group names, received {value!r}")


class Parameter(NamedTuple):
    """A builder keyword: its default, its value in a model that does not take it, its check."""

    default: Any
    otherwise: Any
    check: Callable[[str, Any], None]


# The defaults are the config schemas' (fefm_lab.config.schema, their one statement); `seed`
# keeps the reference's 1024 (runs pass the config's top-level seed).
_DEFAULT: dict[str, Any] = {**family_defaults(), "seed": 1024}

# Every keyword of the family, in DeepFEFM's signature order (the reference's, plus fm_group,
# symmetric and l2_mode): (otherwise, check). `otherwise` switches the part off (or, for
# use_linear and use_fefm, keeps the model's fixed part on).
_KEYWORDS: dict[str, tuple[Any, Callable[[str, Any], None]]] = {
    "fm_group": (("default",), _groups),
    "use_fefm": (True, _flag),
    "dnn_hidden_units": ((), _hidden_units),
    "l2_reg_linear": (0.0, _non_negative),
    "l2_reg_embedding_feat": (0.0, _non_negative),
    "l2_reg_embedding_field": (0.0, _non_negative),
    "l2_reg_dnn": (0.0, _non_negative),
    "seed": (None, _seed),
    "dnn_dropout": (0.0, _dropout),
    "exclude_feature_embed_in_dnn": (False, _flag),
    "use_linear": (True, _flag),
    "use_fefm_embed_in_dnn": (False, _flag),
    "dnn_activation": ("relu", _activation),
    "dnn_use_bn": (False, _flag),
    "task": (None, lambda name, v: check_choice(name, v, TASKS)),
    "symmetric": (True, _flag),
    "l2_mode": (None, lambda name, v: check_choice(name, v, L2_MODES)),
    "num_cross_layers": (0, _cross_layers),
}
PARAMETERS: dict[str, Parameter] = {
    key: Parameter(_DEFAULT[key], otherwise, check) for key, (otherwise, check) in _KEYWORDS.items()
}


@dataclass(frozen=True)
class ModelSpec:
    """One member of the family: its parts and the keywords it takes.

    interaction: "fefm" (P pair scores r_p = v_i^T W_p v_j, summed in the logit), "fm"
        (sum_p <v_i, v_j>), "fwfm" (sum_p w_p <v_i, v_j>) or None (no embeddings at all).
    takes: its keywords: `seed` and its config schema's parameters (`_takes`); with
        `dnn_hidden_units` it has a DNN (`dnn_hidden_units=()`: none), unless `needs_dnn`.
    fixed: values of keywords it does not take that differ from `Parameter.otherwise`.
    """

    title: str
    interaction: str | None
    takes: frozenset[str]
    summary: str
    needs_dnn: bool = False
    fixed: Mapping[str, Any] = field(default_factory=dict)
    cross: bool = False  # DCN-V2's cross network over x_0 (then interaction is None)


def _takes(name: str) -> frozenset[str]:
    """The keywords model `name` takes: its schema dataclass's parameters (the one list) and
    `seed` (runs pass the config's top-level seed)."""
    return frozenset({"seed", *schema_parameters(name)})


MODEL_FAMILY: dict[str, ModelSpec] = {
    "deepfefm": ModelSpec(
        "DeepFEFM",
        "fefm",
        _takes("deepfefm"),
        "DeepFEFM (Pande 2020): b + linear + FEFM logit + DNN over [feature embeddings, r].",
    ),
    "fefm": ModelSpec(
        "FEFM",
        "fefm",
        _takes("fefm"),
        "Shallow FEFM (Pande 2020, Table 3): b + linear + sum_p v_i^T (U_p + U_p^T) v_j.",
    ),
    "fmfm": ModelSpec(
        "FmFM",
        "fefm",
        _takes("fmfm"),
        "FmFM (Sun et al. 2021): shallow FEFM with an unconstrained matrix W_p = U_p per pair.",
        fixed={"symmetric": False},
    ),
    "fm": ModelSpec(
        "FM",
        "fm",
        _takes("fm"),
        "Factorisation machine (Rendle 2010): b + linear + sum_{i<j} <v_i, v_j>.",
    ),
    "fwfm": ModelSpec(
        "FwFM",
        "fwfm",
        _takes("fwfm"),
        "Field-weighted FM (Pan et al. 2018): b + linear + sum_p w_p <v_i, v_j>, one w_p per "
        "pair (`l2_reg_embedding_field` is the L2 strength on w).",
    ),
    "deepfm": ModelSpec(
        "DeepFM",
        "fm",
        _takes("deepfm"),
        "DeepFM (Guo et al. 2017): b + linear + FM + DNN over the shared feature embeddings.",
        needs_dnn=True,
    ),
    "dcnv2": ModelSpec(
        "DCN-V2",
        None,
        _takes("dcnv2"),
        "DCN-V2 (Wang et al. 2021), parallel: b + w^T [CrossNet-V2(x_0) ; DNN(x_0)], x_0 the "
        "flattened feature embeddings and dense values (`l2_reg_dnn` also on the cross kernels).",
        fixed={"use_linear": False},
        cross=True,
    ),
    "lr": ModelSpec(
        "LR",
        None,
        _takes("lr"),
        "Logistic regression: b + linear. `dnn_feature_columns` is accepted and unused.",
    ),
}


def model_parameters(name: str) -> list[str]:
    """The keyword parameters `build_model(name, ...)` accepts, in signature order."""
    spec = _spec(name)
    return [key for key in PARAMETERS if key in spec.takes]


def build_model(
    name: str,
    linear_feature_columns: Sequence[FeatureColumn],
    dnn_feature_columns: Sequence[FeatureColumn],
    **params: Any,
) -> keras.Model:
    """Build model `name` (deepfefm, fefm, fmfm, fm, fwfm, deepfm, dcnv2, lr) with `params`.

    Raises ValueError for an unknown name or a parameter the model does not take.
    """
    allowed = model_parameters(name)
    for key in params:
        if key not in allowed:
            raise ValueError(f"model {name!r} does not take parameter {key!r}; it takes {allowed}")
    return MODELS[name](linear_feature_columns, dnn_feature_columns, **params)


def _spec(name: str) -> ModelSpec:
    if name not in MODEL_FAMILY:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODEL_FAMILY)}")
    return MODEL_FAMILY[name]


def _model_function(name: str) -> Callable[..., keras.Model]:
    """The public builder of one family member, e.g. `DeepFEFM(linear, dnn, **params)`.

    Its signature (inspect / help) lists exactly the keywords the model takes, with defaults.
    """
    spec = MODEL_FAMILY[name]
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    signature = inspect.Signature(
        [
            inspect.Parameter("linear_feature_columns", kind),
            inspect.Parameter(
                "dnn_feature_columns",
                kind,
                default=()
                if spec.interaction is None and not spec.cross
                else inspect.Parameter.empty,
            ),
            *(
                inspect.Parameter(key, kind, default=PARAMETERS[key].default)
                for key in model_parameters(name)
            ),
        ]
    )

    def builder(*args: Any, **kwargs: Any) -> keras.Model:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        params = dict(bound.arguments)
        linear = params.pop("linear_feature_columns")
        dnn = params.pop("dnn_feature_columns")
        return _build(name, linear, dnn, params)

    builder.__signature__ = signature  # type: ignore[attr-defined]
    builder.__name__ = builder.__qualname__ = spec.title
    builder.__doc__ = (
        f"{spec.summary}\n\n{TRAINING_NOTE}\n\n"
        "See `fefm_lab.model` for the parts and the parameters."
    )
    return builder


def _build(
    name: str,
    linear_feature_columns: Sequence[FeatureColumn],
    dnn_feature_columns: Sequence[FeatureColumn],
    params: dict[str, Any],
) -> keras.Model:
    """The one builder: checks `params`, then assembles the parts `MODEL_FAMILY[name]` lists."""
    spec = MODEL_FAMILY[name]
    for key, value in params.items():
        PARAMETERS[key].check(key, value)
    p = {key: param.otherwise for key, param in PARAMETERS.items()}
    p.update(spec.fixed)
    p.update(params)
    units = tuple(p["dnn_hidden_units"])
    has_dnn = bool(units)
    if spec.needs_dnn and not has_dnn:
        raise ValueError(
            f"{spec.title} needs `dnn_hidden_units` (non-empty); without a DNN use "
            f"{spec.title.removeprefix('Deep')}"
        )
    in_logit = spec.interaction is not None and p["use_fefm"]
    in_dnn = has_dnn and p["use_fefm_embed_in_dnn"]
    features_in_dnn = (has_dnn or spec.cross) and not p["exclude_feature_embed_in_dnn"]
    if not (p["use_linear"] or in_logit or has_dnn or spec.cross):
        raise ValueError(
            "nothing left in the logit: use_linear=False, use_fefm=False and "
            "dnn_hidden_units=() (no DNN); enable at least one of them"
        )
    if has_dnn and not (features_in_dnn or in_dnn):
        raise ValueError(
            "the DNN has no input: exclude_feature_embed_in_dnn=True removes the feature "
            "embeddings and use_fefm_embed_in_dnn=False removes the FEFM embeddings; change one "
            "of them or set dnn_hidden_units=()"
        )
    columns = _split_columns(linear_feature_columns, dnn_feature_columns, p["fm_group"])
    interaction_used = in_logit or in_dnn
    if interaction_used:
        _check_fm_fields(columns, _needed_by(spec, in_logit, in_dnn))
    inputs = _inputs(columns, linear_only=spec.interaction is None and not spec.cross)
    embedded = (
        columns.dnn_sparse if features_in_dnn else columns.fm_fields if interaction_used else []
    )
    where, tables = _embed(embedded, inputs, p["l2_reg_embedding_feat"], p["l2_mode"], p["seed"])
    logits = []
    if p["use_linear"]:
        logits.append(_linear_logit(columns, inputs, p["l2_reg_linear"], p["l2_mode"], p["seed"]))
    interaction = None
    if interaction_used:
        layer = _interaction_layer(spec.interaction, p)
        interaction = layer(_fm_field_embeddings(columns, where, tables))
        if in_logit:  # FEFM's (B, P) pair scores: the head sums them into the FEFM logit
            logits.append(interaction)
    if spec.cross:
        dense = [inputs[c.name] for c in columns.dnn_dense]
        x0 = _dnn_input(tables, dense, None, with_features=True)
        logits.append(_dcn_logit(x0, units, p))
    elif has_dnn:
        dnn_input = _dnn_input(
            tables,
            [inputs[c.name] for c in columns.dnn_dense],
            interaction if in_dnn else None,
            with_features=features_in_dnn,
        )
        logits.append(_dnn_logit(dnn_input, units, p))
    output = SumLogits(p["task"], name="prediction")(logits)
    model_name = "fefm" if name == "deepfefm" and not has_dnn else name
    return keras.Model(inputs=_named(inputs), outputs=output, name=model_name)


def _needed_by(spec: ModelSpec, in_logit: bool, in_dnn: bool) -> str:
    """Who needs the fields of `fm_group`, for the message when there are too few."""
    if spec.interaction != "fefm":
        return spec.title
    flags = [f for f, on in (("use_fefm", in_logit), ("use_fefm_embed_in_dnn", in_dnn)) if on]
    return "FEFM (" + " and ".join(f"{f}=True" for f in flags) + ")"


def _interaction_layer(kind: str | None, p: Mapping[str, Any]) -> keras.layers.Layer:
    seed = p["seed"] + _SEED_OFFSETS["pair"]
    if kind == "fefm":
        return FEFMInteraction(
            symmetric=p["symmetric"], l2_reg=p["l2_reg_embedding_field"], seed=seed, name="fefm"
        )
    if kind == "fwfm":
        return FwFMInteraction(l2_reg=p["l2_reg_embedding_field"], seed=seed, name="fwfm")
    return FMInteraction(name="fm")


@dataclass(frozen=True)
class _Columns:
    """The model's inputs split by role."""

    linear_sparse: list[SparseFeat]
    linear_dense: list[DenseFeat]
    dnn_sparse: list[SparseFeat]
    dnn_dense: list[DenseFeat]
    fm_fields: list[SparseFeat]


def _as_columns(columns: Sequence[FeatureColumn], argument: str) -> list[FeatureColumn]:
    columns = list(columns)
    for column in columns:
        if not isinstance(column, SparseFeat | DenseFeat):
            raise ValueError(
                f"`{argument}` must hold SparseFeat / DenseFeat objects, received {column!r}"
            )
    return columns


def _split_columns(
    linear_feature_columns: Sequence[FeatureColumn],
    dnn_feature_columns: Sequence[FeatureColumn],
    fm_group: Sequence[str] | str,
) -> _Columns:
    linear = _as_columns(linear_feature_columns, "linear_feature_columns")
    dnn = _as_columns(dnn_feature_columns, "dnn_feature_columns")
    by_name: dict[str, FeatureColumn] = {}
    for column in [*linear, *dnn]:
        seen = by_name.setdefault(column.name, column)
        if seen != column:
            raise ValueError(
                f"feature column {column.name!r} is defined twice differently: {seen!r} and "
                f"{column!r}"
            )
    groups = (fm_group,) if isinstance(fm_group, str) else tuple(fm_group)
    dnn_sparse = [c for c in dnn if isinstance(c, SparseFeat)]
    return _Columns(
        linear_sparse=[c for c in linear if isinstance(c, SparseFeat)],
        linear_dense=[c for c in linear if isinstance(c, DenseFeat)],
        dnn_sparse=dnn_sparse,
        dnn_dense=[c for c in dnn if isinstance(c, DenseFeat)],
        fm_fields=[c for c in dnn_sparse if c.group_name in groups],
    )


def _inputs(columns: _Columns, *, linear_only: bool) -> dict[str, keras.KerasTensor]:
    sparse = columns.linear_sparse + ([] if linear_only else columns.dnn_sparse)
    dense = columns.linear_dense + ([] if linear_only else columns.dnn_dense)
    inputs: dict[str, keras.KerasTensor] = {}
    for column in sparse:
        inputs.setdefault(column.name, keras.Input((1,), dtype="int32", name=column.name))
    for column in dense:
        inputs.setdefault(
            column.name, keras.Input((column.dimension,), dtype="float32", name=column.name)
        )
    return inputs


def _named(inputs: dict[str, keras.KerasTensor]) -> list[keras.KerasTensor]:
    """The model's inputs as a list of named tensors.

    A Keras 3 functional model built on a dict flattens a call's dict by sorted key, so one
    extra feature in the batch (e.g. a column only another model uses) silently shifts every
    input after it. Built on a list of named inputs, it picks the entries of a dict by name
    and ignores the rest.
    """
    return list(inputs.values())


def _check_fm_fields(columns: _Columns, needed_by: str) -> None:
    fields = columns.fm_fields
    if len(fields) < 2:
        raise ValueError(
            f"{needed_by} needs at least two categorical fields in `fm_group`; found "
            f"{[c.name for c in fields]} among the SparseFeat columns of `dnn_feature_columns`"
        )
    dims = {c.embedding_dim for c in fields}
    if len(dims) > 1:
        raise ValueError(
            "the fields in `fm_group` must share one embedding_dim, found "
            + ", ".join(f"{c.name}={c.embedding_dim}" for c in fields)
        )


def _embed(
    embedded_columns: list[SparseFeat],
    inputs: dict[str, Any],
    l2_reg: float,
    l2_mode: str,
    seed: int,
) -> tuple[dict[str, tuple[int, int]], list[Any]]:
    """Feature embeddings: one shared table (one gather) per distinct embedding size.

    Returns where each column sits, as (table, position), and the tables' (B, n_t, k) outputs.
    """
    dims = sorted({c.embedding_dim for c in embedded_columns})
    where: dict[str, tuple[int, int]] = {}
    outputs = []
    for t, dim in enumerate(dims):
        table_columns = [c for c in embedded_columns if c.embedding_dim == dim]
        layer = FieldEmbedding(
            [c.vocabulary_size for c in table_columns],
            dim,
            l2_reg=l2_reg,
            l2_mode=l2_mode,
            stddev=EMBEDDING_STDDEV,
            seed=seed + _SEED_OFFSETS["embedding"] + 1000 * t,
            name="feature_embedding" if t == 0 else f"feature_embedding_{t}",
        )
        outputs.append(layer([inputs[c.name] for c in table_columns]))
        for i, column in enumerate(table_columns):
            where[column.name] = (t, i)
    return where, outputs


def _fm_field_embeddings(
    columns: _Columns, where: dict[str, tuple[int, int]], tables: list[Any]
) -> Any:
    """(B, n, k) embeddings of the fields of `fm_group`, in column order."""
    table = where[columns.fm_fields[0].name][0]
    indices = [where[c.name][1] for c in columns.fm_fields]
    table_size = sum(1 for t, _ in where.values() if t == table)
    if indices == list(range(table_size)):
        return tables[table]
    return SelectFields(indices, name="fm_fields")(tables[table])


def _linear_logit(
    columns: _Columns, inputs: dict[str, Any], l2_reg: float, l2_mode: str, seed: int
) -> Any:
    if not columns.linear_sparse and not columns.linear_dense:
        raise ValueError("`use_linear=True` needs at least one column in `linear_feature_columns`")
    layer = LinearLogit(
        [c.vocabulary_size for c in columns.linear_sparse],
        dense_dim=sum(c.dimension for c in columns.linear_dense),
        l2_reg=l2_reg,
        l2_mode=l2_mode,
        seed=seed + _SEED_OFFSETS["linear"],
        name="linear",
    )
    return layer([inputs[c.name] for c in [*columns.linear_sparse, *columns.linear_dense]])


def _dnn_input(
    tables: list[Any], dense: list[Any], extra: Any | None, *, with_features: bool
) -> list[Any]:
    parts = []
    if with_features:
        parts += [keras.layers.Flatten(name=f"flatten_{t}")(e) for t, e in enumerate(tables)]
        parts += dense
    if extra is not None:
        parts.append(extra)
    if not parts:
        raise ValueError("the DNN has no input: `dnn_feature_columns` holds no column to feed it")
    return parts


def _concatenated(parts: list[Any], name: str) -> Any:
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name=name)(parts)


def _dcn_logit(x0_parts: list[Any], units: tuple[int, ...], p: Mapping[str, Any]) -> Any:
    """DCN-V2, parallel: Dense(1, no bias) over [CrossNetV2(x_0), DNN hidden output(x_0)]."""
    x0 = _concatenated(x0_parts, "dcn_input")
    cross = CrossNetV2(
        p["num_cross_layers"],
        l2_reg=p["l2_reg_dnn"],
        seed=p["seed"] + _SEED_OFFSETS["cross"],
        name="cross_net",
    )(x0)
    parts = [cross, _dnn_hidden(x0, units, p)] if units else [cross]
    return keras.layers.Dense(
        1,
        use_bias=False,
        kernel_initializer=keras.initializers.GlorotUniform(
            seed=p["seed"] + _SEED_OFFSETS["dnn_output"]
        ),
        name="dcn_logit",
    )(_concatenated(parts, "dcn_output_input"))


def _dnn_logit(dnn_input: list[Any], units: tuple[int, ...], p: Mapping[str, Any]) -> Any:
    """Dense -> (BatchNorm) -> activation -> Dropout per hidden layer, then Dense(1, no bias)."""
    x = _dnn_hidden(_concatenated(dnn_input, "dnn_input"), units, p)
    return keras.layers.Dense(
        1,
        use_bias=False,
        kernel_initializer=keras.initializers.GlorotUniform(
            seed=p["seed"] + _SEED_OFFSETS["dnn_output"]
        ),
        name="dnn_logit",
    )(x)


def _dnn_hidden(x: Any, units: tuple[int, ...], p: Mapping[str, Any]) -> Any:
    """The DNN's hidden layers: Dense -> (BatchNorm) -> activation -> Dropout per layer."""
    seed, l2_reg, dropout = p["seed"], p["l2_reg_dnn"], p["dnn_dropout"]
    for i, width in enumerate(units):
        x = keras.layers.Dense(
            width,
            kernel_initializer=keras.initializers.GlorotNormal(
                seed=seed + _SEED_OFFSETS["dnn_hidden"] + i
            ),
            kernel_regularizer=keras.regularizers.L2(l2_reg) if l2_reg > 0 else None,
            name=f"dnn_hidden_{i}",
        )(x)
        if p["dnn_use_bn"]:
            x = keras.layers.BatchNormalization(name=f"dnn_bn_{i}")(x)
        x = keras.layers.Activation(p["dnn_activation"], name=f"dnn_activation_{i}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(
                dropout, seed=seed + _SEED_OFFSETS["dnn_hidden"] + 500 + i, name=f"dnn_dropout_{i}"
            )(x)
    return x


MODELS: dict[str, Callable[..., keras.Model]] = {
    name: _model_function(name) for name in MODEL_FAMILY
}
DeepFEFM = MODELS["deepfefm"]
FEFM = MODELS["fefm"]
FmFM = MODELS["fmfm"]
FM = MODELS["fm"]
FwFM = MODELS["fwfm"]
DeepFM = MODELS["deepfm"]
DCNv2 = MODELS["dcnv2"]
LR = MODELS["lr"]
