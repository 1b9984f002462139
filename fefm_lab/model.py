"""DeepFEFM (Pande 2020) and the comparison models, built from the blocks in `fefm_lab.layers`.

Every builder returns an uncompiled functional `keras.Model` whose input is a dict of named
arrays (`SparseFeat` -> int (B, 1), `DenseFeat` -> float (B, dimension)) and whose output is
(B, 1): a probability (`task="binary"`) or an unbounded value (`task="regression"`).
Regularisation reaches `model.losses`, so `fit` and a custom loop
(`loss = data_loss + sum(model.losses)`) both see it.

Seeds: every initialiser gets its own seed derived from `seed` (see `_SEED_OFFSETS`), so one seed
reproduces a model exactly and no two tables start equal.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras

from fefm_lab.features import DenseFeat, FeatureColumn, SparseFeat
from fefm_lab.layers import (
    L2_MODES,
    FEFMInteraction,
    FieldEmbedding,
    FMInteraction,
    FwFMInteraction,
    LinearLogit,
    SelectFields,
    SumLogits,
)

TASKS = ("binary", "regression")
EMBEDDING_STDDEV = 1e-4

_SEED_OFFSETS = {"embedding": 0, "pair": 1, "linear": 2, "dnn_output": 3, "dnn_hidden": 10}


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
    if not groups or not all(isinstance(g, str) for g in groups):
        raise ValueError(
            f"`fm_group` must be a non-empty list of group names, received {fm_group!r}"
        )
    dnn_sparse = [c for c in dnn if isinstance(c, SparseFeat)]
    return _Columns(
        linear_sparse=[c for c in linear if isinstance(c, SparseFeat)],
        linear_dense=[c for c in linear if isinstance(c, DenseFeat)],
        dnn_sparse=dnn_sparse,
        dnn_dense=[c for c in dnn if isinstance(c, DenseFeat)],
        fm_fields=[c for c in dnn_sparse if c.group_name in groups],
    )


def _inputs(columns: _Columns) -> dict[str, keras.KerasTensor]:
    inputs: dict[str, keras.KerasTensor] = {}
    for column in [*columns.linear_sparse, *columns.dnn_sparse]:
        inputs.setdefault(column.name, keras.Input((1,), dtype="int32", name=column.name))
    for column in [*columns.linear_dense, *columns.dnn_dense]:
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


def _check_number(name: str, value: Any, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"`{name}` must be a number, received {value!r}")
    if value < low or (high is not None and value >= high):
        bound = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"`{name}` must be {bound}, received {value!r}")
    return float(value)


def _check_common(task: str, l2_mode: str, seed: Any, **l2: Any) -> None:
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}, received {task!r}")
    if l2_mode not in L2_MODES:
        raise ValueError(f"`l2_mode` must be one of {L2_MODES}, received {l2_mode!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"`seed` must be an int, received {seed!r}")
    for name, value in l2.items():
        _check_number(name, value, 0.0)


def _check_dnn(
    dnn_hidden_units: Sequence[int], dnn_dropout: float, dnn_activation: str
) -> tuple[int, ...]:
    units = tuple(dnn_hidden_units)
    if any(isinstance(u, bool) or not isinstance(u, int) or u < 1 for u in units):
        raise ValueError(
            f"`dnn_hidden_units` must be a list of ints >= 1 (empty for no DNN), "
            f"received {dnn_hidden_units!r}"
        )
    _check_number("dnn_dropout", dnn_dropout, 0.0, 1.0)
    try:
        if not isinstance(dnn_activation, str):
            raise ValueError
        keras.activations.get(dnn_activation)
    except (ValueError, TypeError):
        raise ValueError(
            f"`dnn_activation` must name a Keras activation (e.g. 'relu'), "
            f"received {dnn_activation!r}"
        ) from None
    return units


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


def _dnn_logit(
    dnn_input: list[Any],
    units: tuple[int, ...],
    *,
    l2_reg_dnn: float,
    dnn_dropout: float,
    dnn_activation: str,
    dnn_use_bn: bool,
    seed: int,
) -> Any:
    """Dense -> (BatchNorm) -> activation -> Dropout per hidden layer, then Dense(1, no bias)."""
    x = (
        dnn_input[0]
        if len(dnn_input) == 1
        else keras.layers.Concatenate(name="dnn_input")(dnn_input)
    )
    for i, width in enumerate(units):
        x = keras.layers.Dense(
            width,
            kernel_initializer=keras.initializers.GlorotNormal(
                seed=seed + _SEED_OFFSETS["dnn_hidden"] + i
            ),
            kernel_regularizer=keras.regularizers.L2(l2_reg_dnn) if l2_reg_dnn > 0 else None,
            name=f"dnn_hidden_{i}",
        )(x)
        if dnn_use_bn:
            x = keras.layers.BatchNormalization(name=f"dnn_bn_{i}")(x)
        x = keras.layers.Activation(dnn_activation, name=f"dnn_activation_{i}")(x)
        if dnn_dropout > 0:
            x = keras.layers.Dropout(
                dnn_dropout,
                seed=seed + _SEED_OFFSETS["dnn_hidden"] + 500 + i,
                name=f"dnn_dropout_{i}",
            )(x)
    return keras.layers.Dense(
        1,
        use_bias=False,
        kernel_initializer=keras.initializers.GlorotUniform(
            seed=seed + _SEED_OFFSETS["dnn_output"]
        ),
        name="dnn_logit",
    )(x)


def _check_flags(**flags: Any) -> None:
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise ValueError(f"`{name}` must be true or false, received {flag!r}")


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


def DeepFEFM(
    linear_feature_columns: Sequence[FeatureColumn],
    dnn_feature_columns: Sequence[FeatureColumn],
    fm_group: Sequence[str] | str = ("default",),
    use_fefm: bool = True,
    dnn_hidden_units: Sequence[int] = (256, 128, 64),
    l2_reg_linear: float = 1e-5,
    l2_reg_embedding_feat: float = 1e-5,
    l2_reg_embedding_field: float = 1e-5,
    l2_reg_dnn: float = 0,
    seed: int = 1024,
    dnn_dropout: float = 0.0,
    exclude_feature_embed_in_dnn: bool = False,
    use_linear: bool = True,
    use_fefm_embed_in_dnn: bool = True,
    dnn_activation: str = "relu",
    dnn_use_bn: bool = False,
    task: str = "binary",
    symmetric: bool = True,
    l2_mode: str = "batch",
) -> keras.Model:
    """DeepFEFM: logit = b + [use_linear] linear + [use_fefm] sum_p r_p + [DNN] DNN logit.

    r_p = v_i^T (U_p + U_p^T) v_j over the field pairs of `fm_group` (`symmetric=False`: U_p
    alone, as in FmFM). The DNN reads the flattened feature embeddings and dense values (unless
    `exclude_feature_embed_in_dnn`) and r (if `use_fefm_embed_in_dnn`); `dnn_hidden_units=()`
    means no DNN (shallow FEFM), and the two DNN-input flags are then ignored.
    `l2_mode="batch"` (default) puts L2 only on the table rows each example looks up (see
    `FieldEmbedding`); `"table"` on whole tables, as the reference does.
    Configurations with nothing in the logit, a DNN without input or FEFM over fewer than two
    fields raise a ValueError that names the flags.
    """
    _check_common(
        task,
        l2_mode,
        seed,
        l2_reg_linear=l2_reg_linear,
        l2_reg_embedding_feat=l2_reg_embedding_feat,
        l2_reg_embedding_field=l2_reg_embedding_field,
        l2_reg_dnn=l2_reg_dnn,
    )
    _check_flags(
        use_fefm=use_fefm,
        use_linear=use_linear,
        exclude_feature_embed_in_dnn=exclude_feature_embed_in_dnn,
        use_fefm_embed_in_dnn=use_fefm_embed_in_dnn,
        dnn_use_bn=dnn_use_bn,
        symmetric=symmetric,
    )
    units = _check_dnn(dnn_hidden_units, dnn_dropout, dnn_activation)
    has_dnn = bool(units)
    if not (use_linear or use_fefm or has_dnn):
        raise ValueError(
            "nothing left in the logit: use_linear=False, use_fefm=False and "
            "dnn_hidden_units=() (no DNN); enable at least one of them"
        )
    if has_dnn and exclude_feature_embed_in_dnn and not use_fefm_embed_in_dnn:
        raise ValueError(
            "the DNN has no input: exclude_feature_embed_in_dnn=True removes the feature "
            "embeddings and use_fefm_embed_in_dnn=False removes the FEFM embeddings; change one "
            "of them or set dnn_hidden_units=()"
        )
    fefm_in_dnn = has_dnn and use_fefm_embed_in_dnn
    features_in_dnn = has_dnn and not exclude_feature_embed_in_dnn
    columns = _split_columns(linear_feature_columns, dnn_feature_columns, fm_group)
    if use_fefm or fefm_in_dnn:
        used_by = [
            f for f, on in (("use_fefm", use_fefm), ("use_fefm_embed_in_dnn", fefm_in_dnn)) if on
        ]
        _check_fm_fields(columns, "FEFM (" + " and ".join(f"{f}=True" for f in used_by) + ")")
    inputs = _inputs(columns)
    fefm_used = use_fefm or fefm_in_dnn
    embedded = columns.dnn_sparse if features_in_dnn else columns.fm_fields if fefm_used else []
    where, tables = _embed(embedded, inputs, l2_reg_embedding_feat, l2_mode, seed)

    logits = []
    if use_linear:
        logits.append(_linear_logit(columns, inputs, l2_reg_linear, l2_mode, seed))
    pair_scores = None
    if fefm_used:
        pair_scores = FEFMInteraction(
            symmetric=symmetric,
            l2_reg=l2_reg_embedding_field,
            seed=seed + _SEED_OFFSETS["pair"],
            name="fefm",
        )(_fm_field_embeddings(columns, where, tables))
        if use_fefm:
            logits.append(pair_scores)  # the head sums r over the pairs: the FEFM logit
    if has_dnn:
        dnn_input = _dnn_input(
            tables,
            [inputs[c.name] for c in columns.dnn_dense],
            pair_scores if fefm_in_dnn else None,
            with_features=features_in_dnn,
        )
        logits.append(
            _dnn_logit(
                dnn_input,
                units,
                l2_reg_dnn=l2_reg_dnn,
                dnn_dropout=dnn_dropout,
                dnn_activation=dnn_activation,
                dnn_use_bn=dnn_use_bn,
                seed=seed,
            )
        )
    output = SumLogits(task, name="prediction")(logits)
    return keras.Model(
        inputs=_named(inputs), outputs=output, name="deepfefm" if has_dnn else "fefm"
    )


def FEFM(
    linear_feature_columns: Sequence[FeatureColumn],
    dnn_feature_columns: Sequence[FeatureColumn],
    fm_group: Sequence[str] | str = ("default",),
    use_linear: bool = True,
    l2_reg_linear: float = 1e-5,
    l2_reg_embedding_feat: float = 1e-5,
    l2_reg_embedding_field: float = 1e-5,
    seed: int = 1024,
    task: str = "binary",
    symmetric: bool = True,
    l2_mode: str = "batch",
) -> keras.Model:
    """Shallow FEFM: logit = b + [use_linear] linear + sum_p v_i^T W_p v_j (DeepFEFM, no DNN)."""
    return DeepFEFM(
        linear_feature_columns,
        dnn_feature_columns,
        fm_group=fm_group,
        use_fefm=True,
        dnn_hidden_units=(),
        l2_reg_linear=l2_reg_linear,
        l2_reg_embedding_feat=l2_reg_embedding_feat,
        l2_reg_embedding_field=l2_reg_embedding_field,
        seed=seed,
        use_linear=use_linear,
        use_fefm_embed_in_dnn=False,
        task=task,
        symmetric=symmetric,
        l2_mode=l2_mode,
    )


def FmFM(
    linear_feature_columns: Sequence[FeatureColumn],
    dnn_feature_columns: Sequence[FeatureColumn],
    fm_group: Sequence[str] | str = ("default",),
    use_linear: bool = True,
    l2_reg_linear: float = 1e-5,
    l2_reg_embedding_feat: float = 1e-5,
    l2_reg_embedding_field: float = 1e-5,
    seed: int = 1024,
    task: str = "binary",
    l2_mode: str = "batch",
) -> keras.Model:
    """FmFM (Sun et al. 2021): shallow FEFM with an unconstrained matrix W_p = U_p per pair."""
    return FEFM(
        linear_feature_columns,
        dnn_feature_columns,
        fm_group=fm_group,
        use_linear=use_linear,
        l2_reg_linear=l2_reg_linear,
        l2_reg_embedding_feat=l2_reg_embedding_feat,
        l2_reg_embedding_field=l2_reg_embedding_field,
        seed=seed,
        task=task,
        symmetric=False,
        l2_mode=l2_mode,
    )


def LR(
    linear_feature_columns: Sequence[FeatureColumn],
    dnn_feature_columns: Sequence[FeatureColumn] = (),
    l2_reg_linear: float = 1e-5,
    seed: int = 1024,
    task: str = "binary",
    l2_mode: str = "batch",
) -> keras.Model:
    """Logistic regression: logit = b + linear. `dnn_feature_columns` is accepted and unused."""
    _check_common(task, l2_mode, seed, l2_reg_linear=l2_reg_linear)
    columns = _split_columns(linear_feature_columns, dnn_feature_columns, ("default",))
    inputs = _inputs(columns)
    linear_inputs = {
        c.name: inputs[c.name] for c in [*columns.linear_sparse, *columns.linear_dense]
    }
    logit = _linear_logit(columns, inputs, l2_reg_linear, l2_mode, seed)
    output = SumLogits(task, name="prediction")([logit])
    return keras.Model(inputs=_named(linear_inputs), outputs=output, name="lr")


def _second_order_model(
    name: str,
    interaction: keras.layers.Layer,
    linear_feature_columns: Sequence[FeatureColumn],
    dnn_feature_columns: Sequence[FeatureColumn],
    *,
    fm_group: Sequence[str] | str,
    use_linear: bool,
    l2_reg_linear: float,
    l2_reg_embedding_feat: float,
    seed: int,
    task: str,
    l2_mode: str,
    dnn: dict[str, Any] | None = None,
) -> keras.Model:
    """b + [use_linear] linear + interaction(fm fields) [+ DNN over all feature embeddings]."""
    _check_flags(use_linear=use_linear)
    units = (
        _check_dnn(dnn["dnn_hidden_units"], dnn["dnn_dropout"], dnn["dnn_activation"])
        if dnn
        else ()
    )
    if dnn:
        _check_number("l2_reg_dnn", dnn["l2_reg_dnn"], 0.0)
        _check_flags(dnn_use_bn=dnn["dnn_use_bn"])
    columns = _split_columns(linear_feature_columns, dnn_feature_columns, fm_group)
    _check_fm_fields(columns, name)
    inputs = _inputs(columns)
    embedded = columns.dnn_sparse if units else columns.fm_fields
    where, tables = _embed(embedded, inputs, l2_reg_embedding_feat, l2_mode, seed)
    logits = []
    if use_linear:
        logits.append(_linear_logit(columns, inputs, l2_reg_linear, l2_mode, seed))
    logits.append(interaction(_fm_field_embeddings(columns, where, tables)))
    if units:
        dnn_input = _dnn_input(
            tables, [inputs[c.name] for c in columns.dnn_dense], None, with_features=True
        )
        logits.append(
            _dnn_logit(
                dnn_input,
                units,
                l2_reg_dnn=dnn["l2_reg_dnn"],
                dnn_dropout=dnn["dnn_dropout"],
                dnn_activation=dnn["dnn_activation"],
                dnn_use_bn=dnn["dnn_use_bn"],
                seed=seed,
            )
        )
    output = SumLogits(task, name="prediction")(logits)
    return keras.Model(inputs=_named(inputs), outputs=output, name=name.lower())


def FM(
    linear_feature_columns: Sequence[FeatureColumn],
    dnn_feature_columns: Sequence[FeatureColumn],
    fm_group: Sequence[str] | str = ("default",),
    use_linear: bool = True,
    l2_reg_linear: float = 1e-5,
    l2_reg_embedding_feat: float = 1e-5,
    seed: int = 1024,
    task: str = "binary",
    l2_mode: str = "batch",
) -> keras.Model:
    """Factorisation machine (Rendle 2010): logit = b + linear + sum_{i<j} <v_i, v_j>."""
    _check_common(
        task,
        l2_mode,
        seed,
        l2_reg_linear=l2_reg_linear,
        l2_reg_embedding_feat=l2_reg_embedding_feat,
    )
    return _second_order_model(
        "FM",
        FMInteraction(name="fm"),
        linear_feature_columns,
        dnn_feature_columns,
        fm_group=fm_group,
        use_linear=use_linear,
        l2_reg_linear=l2_reg_linear,
        l2_reg_embedding_feat=l2_reg_embedding_feat,
        seed=seed,
        task=task,
        l2_mode=l2_mode,
    )


def FwFM(
    linear_feature_columns: Sequence[FeatureColumn],
    dnn_feature_columns: Sequence[FeatureColumn],
    fm_group: Sequence[str] | str = ("default",),
    use_linear: bool = True,
    l2_reg_linear: float = 1e-5,
    l2_reg_embedding_feat: float = 1e-5,
    l2_reg_embedding_field: float = 1e-5,
    seed: int = 1024,
    task: str = "binary",
    l2_mode: str = "batch",
) -> keras.Model:
    """Field-weighted FM (Pan et al. 2018): b + linear + sum_p r_p <v_i, v_j>, one r_p per pair.

    `l2_reg_embedding_field` is the L2 strength on the pair weights r.
    """
    _check_common(
        task,
        l2_mode,
        seed,
        l2_reg_linear=l2_reg_linear,
        l2_reg_embedding_feat=l2_reg_embedding_feat,
        l2_reg_embedding_field=l2_reg_embedding_field,
    )
    return _second_order_model(
        "FwFM",
        FwFMInteraction(
            l2_reg=l2_reg_embedding_field, seed=seed + _SEED_OFFSETS["pair"], name="fwfm"
        ),
        linear_feature_columns,
        dnn_feature_columns,
        fm_group=fm_group,
        use_linear=use_linear,
        l2_reg_linear=l2_reg_linear,
        l2_reg_embedding_feat=l2_reg_embedding_feat,
        seed=seed,
        task=task,
        l2_mode=l2_mode,
    )


def DeepFM(
    linear_feature_columns: Sequence[FeatureColumn],
    dnn_feature_columns: Sequence[FeatureColumn],
    fm_group: Sequence[str] | str = ("default",),
    dnn_hidden_units: Sequence[int] = (256, 128, 64),
    l2_reg_linear: float = 1e-5,
    l2_reg_embedding_feat: float = 1e-5,
    l2_reg_dnn: float = 0,
    seed: int = 1024,
    dnn_dropout: float = 0.0,
    use_linear: bool = True,
    dnn_activation: str = "relu",
    dnn_use_bn: bool = False,
    task: str = "binary",
    l2_mode: str = "batch",
) -> keras.Model:
    """DeepFM (Guo et al. 2017): b + linear + FM + DNN over the shared feature embeddings."""
    _check_common(
        task,
        l2_mode,
        seed,
        l2_reg_linear=l2_reg_linear,
        l2_reg_embedding_feat=l2_reg_embedding_feat,
    )
    if not tuple(dnn_hidden_units):
        raise ValueError("DeepFM needs `dnn_hidden_units` (non-empty); without a DNN use FM")
    return _second_order_model(
        "DeepFM",
        FMInteraction(name="fm"),
        linear_feature_columns,
        dnn_feature_columns,
        fm_group=fm_group,
        use_linear=use_linear,
        l2_reg_linear=l2_reg_linear,
        l2_reg_embedding_feat=l2_reg_embedding_feat,
        seed=seed,
        task=task,
        l2_mode=l2_mode,
        dnn={
            "dnn_hidden_units": dnn_hidden_units,
            "l2_reg_dnn": l2_reg_dnn,
            "dnn_dropout": dnn_dropout,
            "dnn_activation": dnn_activation,
            "dnn_use_bn": dnn_use_bn,
        },
    )


MODELS: dict[str, Callable[..., keras.Model]] = {
    "deepfefm": DeepFEFM,
    "fefm": FEFM,
    "fmfm": FmFM,
    "fm": FM,
    "fwfm": FwFM,
    "deepfm": DeepFM,
    "lr": LR,
}


def model_parameters(name: str) -> list[str]:
    """The keyword parameters `build_model(name, ...)` accepts."""
    builder = _builder(name)
    return list(inspect.signature(builder).parameters)[2:]


def _builder(name: str) -> Callable[..., keras.Model]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    return MODELS[name]


def build_model(
    name: str,
    linear_feature_columns: Sequence[FeatureColumn],
    dnn_feature_columns: Sequence[FeatureColumn],
    **params: Any,
) -> keras.Model:
    """Build model `name` (deepfefm, fefm, fmfm, fm, fwfm, deepfm, lr) with keyword `params`.

    Raises ValueError for an unknown name or a parameter the model does not take.
    """
    builder = _builder(name)
    allowed = model_parameters(name)
    for key in params:
        if key not in allowed:
            raise ValueError(f"model {name!r} does not take parameter {key!r}; it takes {allowed}")
    if "dnn_hidden_units" in params:
        params["dnn_hidden_units"] = tuple(params["dnn_hidden_units"])
    if "fm_group" in params and not isinstance(params["fm_group"], str):
        params["fm_group"] = tuple(params["fm_group"])
    return builder(linear_feature_columns, dnn_feature_columns, **params)
