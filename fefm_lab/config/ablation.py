"""What each DeepFEFM ablation means, stated once.

`ABLATIONS` is the `ablation` config group (registered as its options by
`fefm_lab.config.registry`), the order of the report's rows, and what `ablation_label` reads back
from a run's model flags. The first five are the paper's Table 5 (Pande 2020).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Ablation:
    """One option of the `ablation` group.

    `settings` are the model keys the option sets; `marker` is the one setting that identifies it
    in a run's flags. `removes_dnn`: the run has no DNN (it leads the label, and ablations that
    only change the DNN's input (`dnn_input`) mean nothing beside it). `seed_stream` > 0: the
    run's initialisation and shuffling seed comes from that independent stream (`model_seed`).
    """

    name: str
    doc: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    marker: tuple[str, Any] | None = None
    dnn_input: bool = False
    removes_dnn: bool = False
    seed_stream: int = 0


ABLATIONS: tuple[Ablation, ...] = (
    Ablation("none", "No ablation: the model's flags as configured."),
    Ablation(
        "control",
        "A/A check: `none` again (the same flags and data split), with initialisation and "
        "shuffling seeds from an independent stream; its paired difference to `none` is pure "
        "seed noise, so its verdict must be equivalent or not resolved.",
        seed_stream=1,
    ),
    Ablation(
        "no_fefm_logit",
        "Paper Table 5, Ablation1: the FEFM logit leaves the output (the FEFM layer still feeds "
        "the DNN).",
        {"use_fefm": False},
        ("use_fefm", False),
    ),
    Ablation(
        "no_linear",
        "Paper Table 5, Ablation2: no linear terms in the output.",
        {"use_linear": False},
        ("use_linear", False),
    ),
    Ablation(
        "no_feature_embed_in_dnn",
        "Paper Table 5, Ablation3: the DNN sees only the FEFM interaction embeddings, not the "
        "feature embeddings and dense values.",
        {"exclude_feature_embed_in_dnn": True},
        ("exclude_feature_embed_in_dnn", True),
        dnn_input=True,
    ),
    Ablation(
        "no_fefm_embed_in_dnn",
        "Paper Table 5, Ablation4: the DNN sees only the feature embeddings, not the FEFM "
        "interaction embeddings.",
        {"use_fefm_embed_in_dnn": False},
        ("use_fefm_embed_in_dnn", False),
        dnn_input=True,
    ),
    Ablation(
        "shallow",
        "No DNN at all: linear + FEFM logit (the shallow FEFM of the paper's Table 3).",
        {"dnn_hidden_units": [], "use_fefm_embed_in_dnn": False},
        ("dnn_hidden_units", []),
        removes_dnn=True,
    ),
    Ablation(
        "asymmetric",
        "Unconstrained field-pair matrices W_p instead of U_p + U_p^T (paper Fig. 8b; the FmFM "
        "choice).",
        {"symmetric": False},
        ("symmetric", False),
    ),
)
ABLATION_NAMES = tuple(a.name for a in ABLATIONS)
# Paper Table 5's rows, in its order.
TABLE5_ABLATIONS = (
    "none", "no_fefm_logit", "no_linear", "no_feature_embed_in_dnn", "no_fefm_embed_in_dnn",
)  # fmt: skip
BY_NAME = {a.name: a for a in ABLATIONS}


def seed_stream(resolved: Mapping[str, Any]) -> int:
    """The seed stream of the run's `ablation` choice (0: the run's own seed)."""
    chosen = BY_NAME.get(str(resolved.get("ablation", "none")))
    return chosen.seed_stream if chosen is not None else 0


def model_seed(resolved: Mapping[str, Any]) -> int:
    """The seed of the run's initialisation and shuffling: `seed` itself on stream 0, else the
    first 31 bits of sha256("seed:stream") (independent of every stream-0 seed but by chance)."""
    seed, stream = int(resolved["seed"]), seed_stream(resolved)
    if stream == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def _applies(ablation: Ablation, model: Mapping[str, Any]) -> bool:
    if ablation.marker is None:
        return False
    key, value = ablation.marker
    return key in model and model[key] == value and type(model[key]) is type(value)


def ablation_label(resolved: Mapping[str, Any]) -> str:
    """The ablation a DeepFEFM run actually is, read from its flags ('none', 'no_linear', ...).

    Reading the flags (not the `ablation` group choice) names grid-sweep runs correctly too:
    `model.use_linear=false` is 'no_linear' whichever way it was set. Several join with '+'; a
    run without a DNN is 'shallow' first, and the DNN-input ablations mean nothing beside it.
    `control` (none's flags on another seed stream) keeps its name. Other models keep the
    group's name.
    """
    model = resolved["model"]
    if model.get("name") != "deepfefm":
        return str(resolved.get("ablation", "none"))
    if seed_stream(resolved) and not any(_applies(a, model) for a in ABLATIONS):
        return str(resolved["ablation"])  # `control`: none's flags under its own label
    applying = [a for a in ABLATIONS if _applies(a, model)]
    shallow = any(a.removes_dnn for a in applying)
    names = [a.name for a in applying if a.removes_dnn]
    names += [a.name for a in applying if not a.removes_dnn and not (shallow and a.dnn_input)]
    return "+".join(names) or "none"
