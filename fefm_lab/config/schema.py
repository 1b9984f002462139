"""The config schemas: every default, type and range of fefm-lab's configs, declared once.

Hydra's ConfigStore holds them under the `schema/` group (see `fefm_lab.config.registry`), out of
the way of `glob(*)`; each YAML under conf/ starts from its schema (`/schema/...@_here_` in its
defaults list) and states only its differences, with a comment saying why. A model's dataclass
lists exactly the parameters its builder takes (`fefm_lab.model.build_model`) plus `name` and,
for models with embeddings, `embedding_dim`; `model_defaults(name)` gives the builder's defaults
without importing TensorFlow.

The `dataset` group's schemas (`DATASET_SCHEMAS`, one per format) give its keys, defaults, types,
ranges and docs; `fefm_lab.config.dataset` builds from them the typed `DatasetConfig` that
preparation reads, and adds the rules between keys. The `trainer` section's schema is
`fefm_lab.config.trainer.TrainerConfig`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from fefm_lab.config.rules import (
    FRACTION,
    NON_EMPTY_TEXT,
    NON_NEGATIVE,
    PORT,
    POSITIVE,
    Rule,
    int_at_least,
    one_of,
    option,
    section,
)

L2_MODES = ("batch", "table")
# The planted teachers fefm_lab.data.synthetic generates (dataset.synthetic.teacher, synth.teacher).
SYNTHETIC_TEACHERS = ("pairs", "deep")
# The trainer fits 0/1 click labels with log loss; regression is a Python-API-only model option.
BINARY_ONLY = Rule(lambda v: v == "binary", "'binary' (click labels; regression: Python API only)")
LAYER_WIDTHS = Rule(lambda v: all(u >= 1 for u in v), "a list of layer widths >= 1 ([] = no DNN)")
NON_EMPTY_WIDTHS = Rule(
    lambda v: len(v) > 0 and all(u >= 1 for u in v), "a non-empty list of layer widths >= 1"
)
OPEN_FRACTION = Rule(lambda v: 0 < v < 1, "a number in (0, 1)")
GROUP_NAMES = Rule(lambda v: len(v) > 0, "a non-empty list of feature-group names")


# ---------------------------------------------------------------- models


@dataclass
class ModelConfig:
    """What every model takes: its name, the task, and the linear part's L2."""

    name: str = option(MISSING, "the model family (fixed by the `model` group option)")
    task: str = option("binary", "binary: sigmoid output, log loss on 0/1 clicks", BINARY_ONLY)
    l2_mode: str = option(
        "batch",
        "batch: L2 on the table rows a batch looks up | table: on whole tables (the reference)",
        one_of(*L2_MODES),
    )
    l2_reg_linear: float = option(1e-5, "L2 strength on the linear (1-d) tables", NON_NEGATIVE)


@dataclass
class EmbeddingModelConfig(ModelConfig):
    """A model with feature embeddings and a second-order part over the `fm_group` fields."""

    embedding_dim: int = option(16, "k: size of every feature embedding", int_at_least(1))
    fm_group: list[str] = option(
        ["default"], "feature-column groups that form the interaction fields", GROUP_NAMES
    )
    use_linear: bool = option(True, "add the linear terms to the logit")
    l2_reg_embedding_feat: float = option(1e-5, "L2 strength on feature embeddings", NON_NEGATIVE)


@dataclass
class FieldPairModelConfig(EmbeddingModelConfig):
    """A model with learned parameters per field pair (FwFM's r_p, FEFM's and FmFM's W_p)."""

    l2_reg_embedding_field: float = option(
        1e-7, "L2 strength on the per-field-pair parameters (r_p or U_p)", NON_NEGATIVE
    )


@dataclass
class DNNConfig:
    """The deep part's settings (DeepFM, DeepFEFM)."""

    dnn_hidden_units: list[int] = option(
        [256, 128, 64], "DNN hidden layer widths ([] = no DNN)", LAYER_WIDTHS
    )
    dnn_activation: str = option("relu", "the hidden layers' Keras activation", NON_EMPTY_TEXT)
    dnn_dropout: float = option(0.0, "dropout rate after each hidden layer", FRACTION)
    dnn_use_bn: bool = option(False, "batch normalisation after each hidden layer")
    l2_reg_dnn: float = option(0.0, "L2 strength on the DNN kernels", NON_NEGATIVE)


@dataclass
class LRConfig(ModelConfig):
    """Logistic regression: b + one weight per categorical value and per dense value."""

    name: str = option("lr", "the model family")


@dataclass
class FMConfig(EmbeddingModelConfig):
    """FM (Rendle 2010): b + linear + sum over field pairs of <v_i, v_j>."""

    name: str = option("fm", "the model family")


@dataclass
class FwFMConfig(FieldPairModelConfig):
    """FwFM (Pan et al. 2018): b + linear + sum over pairs of r_p <v_i, v_j>."""

    name: str = option("fwfm", "the model family")


@dataclass
class FmFMConfig(FieldPairModelConfig):
    """FmFM (Sun et al. 2021): b + linear + sum over pairs of v_i^T W_p v_j, W_p unconstrained."""

    name: str = option("fmfm", "the model family")


@dataclass
class FEFMConfig(FieldPairModelConfig):
    """FEFM (Pande 2020), shallow: b + linear + sum over pairs of v_i^T W_p v_j."""

    name: str = option("fefm", "the model family")
    symmetric: bool = option(True, "true: W_p = U_p + U_p^T (FEFM); false: W_p = U_p (FmFM)")


@dataclass
class DeepFMConfig(DNNConfig, EmbeddingModelConfig):
    """DeepFM (Guo et al. 2017): b + linear + FM + a DNN over the feature embeddings."""

    name: str = option("deepfm", "the model family")
    dnn_hidden_units: list[int] = option(
        [256, 128, 64],
        "DNN hidden layer widths (DeepFM needs a DNN; use FM without)",
        NON_EMPTY_WIDTHS,
    )


@dataclass
class DeepFEFMConfig(DNNConfig, FEFMConfig):
    """DeepFEFM (Pande 2020): b + linear + FEFM logit + DNN over [embeddings, FEFM embeddings].

    The four flags below are the paper's Table 5 ablations (see `fefm_lab.config.ablation`).
    """

    name: str = option("deepfefm", "the model family")
    embedding_dim: int = option(
        8,
        "k: size of every feature embedding (8 keeps the default run on the synthetic data near "
        "a minute on 2 cores, k=16 was 2.5x slower per step; the paper's best: 48 on Criteo, 96 "
        "on Avazu, experiment=paper_criteo / paper_avazu)",
        int_at_least(1),
    )
    use_fefm: bool = option(True, "add the FEFM logit sum_p r_p to the output")
    exclude_feature_embed_in_dnn: bool = option(
        False, "keep the feature embeddings and dense values out of the DNN input"
    )
    use_fefm_embed_in_dnn: bool = option(True, "feed the FEFM interaction embeddings r to the DNN")


@dataclass
class DCNv2Config(DNNConfig):
    """DCN-V2 (Wang et al. 2021), parallel: b + w^T [x_L ; DNN(x_0)], x_0 the flattened feature
    embeddings and dense values, x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l with full-rank W_l.

    No linear or FM term (as the paper); `l2_reg_dnn` is on the DNN and the cross kernels.
    """

    name: str = option("dcnv2", "the model family")
    task: str = option("binary", "binary: sigmoid output, log loss on 0/1 clicks", BINARY_ONLY)
    l2_mode: str = option(
        "batch",
        "batch: L2 on the table rows a batch looks up | table: on whole tables (the reference)",
        one_of(*L2_MODES),
    )
    embedding_dim: int = option(16, "k: size of every feature embedding", int_at_least(1))
    l2_reg_embedding_feat: float = option(1e-5, "L2 strength on feature embeddings", NON_NEGATIVE)
    num_cross_layers: int = option(
        3, "L: full-rank cross layers x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l", int_at_least(1)
    )


MODEL_SCHEMAS: dict[str, type] = {
    "deepfefm": DeepFEFMConfig,
    "fefm": FEFMConfig,
    "fmfm": FmFMConfig,
    "fm": FMConfig,
    "fwfm": FwFMConfig,
    "deepfm": DeepFMConfig,
    "dcnv2": DCNv2Config,
    "lr": LRConfig,
}
MODEL_NAMES = tuple(MODEL_SCHEMAS)
# Model config keys that are not build_model parameters.
MODEL_CONFIG_ONLY = ("name", "embedding_dim")


def model_parameters(name: str) -> tuple[str, ...]:
    """The build_model keyword parameters of model `name` (besides `seed`)."""
    fields = dataclasses.fields(MODEL_SCHEMAS[name])
    return tuple(f.name for f in fields if f.name not in MODEL_CONFIG_ONLY)


def model_defaults(name: str) -> dict[str, Any]:
    """The builder's default keyword arguments for model `name` (TF-free; lists stay lists)."""
    values = dataclasses.asdict(MODEL_SCHEMAS[name]())
    return {key: values[key] for key in model_parameters(name)}


def family_defaults() -> dict[str, Any]:
    """Every builder keyword's default (one value across the models that take it), lists as tuples.

    This is where `fefm_lab.model`'s builders take their defaults from.
    """
    merged: dict[str, Any] = {}
    for name in MODEL_SCHEMAS:
        for key, value in model_defaults(name).items():
            value = tuple(value) if isinstance(value, list) else value
            if merged.setdefault(key, value) != value:
                raise AssertionError(f"schemas disagree on the default of {key!r}")
    return merged


# ---------------------------------------------------------------- datasets
# Each key's range is its rule here; the rules between keys (a path unless synthetic, a generic
# file's columns, split=given's format) are fefm_lab.config.dataset.validate_dataset_config's.

DATASET_FORMATS = ("criteo", "avazu", "generic", "synthetic")
SPLIT_MODES = ("shuffled", "sequential", "given")
INTEGER_ENCODINGS = ("categorical", "log_bucket", "dense_minmax")
BAD_ROW_POLICIES = ("error", "skip")
FILE_TYPES = ("csv", "parquet")
SYNTHETIC_FORMATS = ("criteo", "avazu")
HEX_DIGITS = frozenset("0123456789abcdef")

SPLIT_FRACTIONS = Rule(
    lambda v: (
        len(v) == 3
        and all(f >= 0 for f in v)
        and v[0] > 0
        and math.isclose(sum(v), 1.0, abs_tol=1e-9)
    ),
    "three numbers [train, validation, test] >= 0 with train > 0 summing to 1",
)
COLUMN_NAMES = Rule(
    lambda v: all(v) and len(set(v)) == len(v), "a list of distinct, non-empty column names"
)
SEPARATOR = Rule(
    lambda v: len(v) == 1 and v not in '\n\r"', "one character (not a newline or a quote)"
)
SPLIT_FILES = Rule(
    lambda v: len(v) == 3 and all(f and "/" not in f for f in v) and len(set(v)) == 3,
    "three distinct file names [train, validation, test] inside dataset.path",
)
MD5_DIGESTS = Rule(
    lambda v: len(v) == 3 and all(len(d) == 32 and set(d) <= HEX_DIGITS for d in v),
    "three lowercase hex MD5 digests (32 characters) of [train, validation, test]",
)


@dataclass
class DatasetSchema:
    """A raw file and how to prepare it (criteo, avazu; the other formats add keys)."""

    name: str = option(
        MISSING,
        "shown in run names and MLflow tags; also the prepared directory's name prefix",
        NON_EMPTY_TEXT,
    )
    format: str = option(
        MISSING, "source kind: criteo | avazu | generic | synthetic", one_of(*DATASET_FORMATS)
    )
    path: str | None = option(MISSING, "the raw file (plain or .gz; required but for synthetic)")
    split: str = option(
        "shuffled",
        "shuffled (hash of seed and row number) | sequential (file order, i.e. time order) | "
        "given (generic csv only: path is a folder of three files, each one split, as a "
        "benchmark publishes them; never re-split)",
        one_of(*SPLIT_MODES),
    )
    split_fractions: list[float] = option(
        [0.64, 0.16, 0.20],
        "[train, validation, test] fractions summing to 1 (the paper's)",
        SPLIT_FRACTIONS,
    )
    split_seed: int | None = option(
        None,
        "seed of the shuffled split; null = the run's `seed` (pin it so several seeds share one "
        "split: at full scale each distinct split is a separate ~10 minute preparation)",
        int_at_least(0),
    )
    min_count: int = option(
        20,
        "values seen fewer times in the train split map to the field's OOV id (paper: 20)",
        int_at_least(1),
    )
    integer_encoding: str = option(
        "categorical",
        "integer columns: categorical (one id per integer value, the paper) | log_bucket "
        "(floor(ln(x)^2) for x > 2; each x <= 2, negatives included, its own id) | dense_minmax "
        "(float in [0, 1] scaled by train min/max, missing = 0 before scaling, as DeepCTR)",
        one_of(*INTEGER_ENCODINGS),
    )
    on_bad_rows: str = option(
        "error",
        "a malformed row: error (stop, naming file and line) | skip (drop it, count it in the "
        "manifest)",
        one_of(*BAD_ROW_POLICIES),
    )
    block_bytes: int = option(
        16777216,
        "bytes read and parsed per chunk (memory vs overhead; not the result)",
        int_at_least(1),
    )
    shard_rows: int = option(
        1000000, "rows per Arrow shard file of a split (not the result)", int_at_least(1)
    )


@dataclass
class GenericDatasetSchema(DatasetSchema):
    """Any CSV / TSV (plain or .gz) or parquet file with a 0/1 label column."""

    file_type: str = option(
        "csv", "csv (one-character separator, no quoting) | parquet", one_of(*FILE_TYPES)
    )
    separator: str = option(",", "field separator of a csv file, one character", SEPARATOR)
    header: bool = option(True, "whether the first line names the columns (csv only)")
    column_names: list[str] | None = option(
        None,
        "every column name in file order; required when header is false (with a header, when "
        "given, the header must equal it)",
        COLUMN_NAMES,
    )
    label: str | None = option(MISSING, "the 0/1 label column (required)")
    categorical: list[str] = option(
        [], "categorical feature columns (any text, hashed to ids)", COLUMN_NAMES
    )
    numeric: list[str] = option(
        [], "numeric feature columns: integers, or any number with dense_minmax", COLUMN_NAMES
    )
    split_files: list[str] = option(
        ["train.csv", "valid.csv", "test.csv"],
        "split=given: the [train, validation, test] file names inside the folder `path`, all with "
        "the same header",
        SPLIT_FILES,
    )
    md5: list[str] | None = option(
        None,
        "split=given: the published MD5 of each of split_files, checked once before preparing "
        "(a mismatch stops, naming the file); null = not checked",
        MD5_DIGESTS,
    )


@dataclass
class SyntheticSourceSchema:
    """What `format: synthetic` generates (then prepares as that raw format)."""

    format: str = option(
        "criteo",
        "raw layout: criteo (TSV, 13 integer + 26 categorical) | avazu",
        one_of(*SYNTHETIC_FORMATS),
    )
    rows: int = option(
        150000,
        "rows to generate; ~150k keeps a default DeepFEFM run near a minute on 2 cores",
        int_at_least(1),
    )
    seed: int = option(
        0,
        "generator seed: values, teacher and labels are a function of it and rows",
        int_at_least(0),
    )
    teacher: str = option(
        "pairs",
        "the planted teacher: pairs (linear + 4 FEFM-form field pairs; linear + FEFM is its own "
        "family) | deep (8 pairs + a threshold of a sum over 6 fields that only a DNN "
        "expresses; fefm_lab/data/synthetic.py)",
        one_of(*SYNTHETIC_TEACHERS),
    )


@dataclass
class SyntheticDatasetSchema(DatasetSchema):
    """The embedded default: a generated Criteo-format file with a planted teacher (no raw file).

    Its defaults are the default dataset's: `dataset=synthetic` and the Python API's
    `DatasetConfig()` (fefm_lab.config.dataset) alike.
    """

    name: str = option(
        "synthetic",
        "shown in run names and MLflow tags; also the prepared directory's name prefix",
        NON_EMPTY_TEXT,
    )
    format: str = option(
        "synthetic", "source kind: criteo | avazu | generic | synthetic", one_of(*DATASET_FORMATS)
    )
    path: str | None = option(None, "none: the generated file's path follows from `synthetic`")
    synthetic: SyntheticSourceSchema = section(SyntheticSourceSchema, "the generated file")


DATASET_SCHEMAS: dict[str, type[DatasetSchema]] = {
    "criteo": DatasetSchema,
    "avazu": DatasetSchema,
    "generic": GenericDatasetSchema,
    "synthetic": SyntheticDatasetSchema,
}


# ---------------------------------------------------------------- the other sections


@dataclass
class PathsConfig:
    """Where fefm-lab reads and writes; everything hangs off root_dir."""

    root_dir: str = option(".", "the base of every other path (tests point it at a tmp dir)")
    data_root: str = option(
        "${paths.root_dir}/data", "prepared (cached) datasets go to data_root/prepared/"
    )
    output_dir: str = option("${paths.root_dir}/outputs", "Hydra's run and sweep directories")
    results_dir: str = option("${paths.root_dir}/results", "reports: results/<experiment>/")
    checkpoint_dir: str = option(
        "${paths.root_dir}/checkpoints",
        "training checkpoints, one directory per config hash (shared storage on a cluster, so "
        "a restarted or requeued job on another node continues from it)",
    )


@dataclass
class MlflowConfig:
    """The MLflow tracking store runs are recorded in."""

    tracking_uri: str = option(
        "sqlite:///${paths.root_dir}/mlflow.db", "the tracking store's URI", NON_EMPTY_TEXT
    )
    experiment: str = option(
        "fefm-lab", "experiment runs are filed under (and `fefm-lab report` reads)", NON_EMPTY_TEXT
    )
    artifact_location: str | None = option(
        "${paths.root_dir}/mlartifacts",
        "where a newly created experiment stores artifacts (an existing one keeps its own); "
        "a local path is not used with a tracking server (http://...), which stores them itself",
    )
    ui_port: int = option(5000, "`fefm-lab ui` serves on 127.0.0.1 at this port", PORT)


@dataclass
class SweepConfig:
    """A sweep's parent run."""

    name: str | None = option(
        None,
        "the parent run's name; null = the experiment preset's name, else one built from the "
        "command-line overrides. Repeating a sweep with the same name resumes it.",
    )
    invocation: str | None = option(
        None,
        "set by `fefm-lab run -m`: a token naming this launch of the sweep; its parent run "
        "carries it, and every job finds its parent run by it. Do not set.",
    )
    parent_run_id: str | None = option(
        None, "filled in by each sweep job from the parent run it found; do not set"
    )
    data_fingerprints: list[str] = option(
        [],
        "filled in by `fefm-lab run -m`: fingerprints of the datasets it prepared before the "
        "jobs started; a job then only reuses them from paths.data_root (shared storage). "
        "Do not set.",
    )
    unprepared: list[str] = option(
        [],
        "filled in by `fefm-lab run -m`: keys of the datasets it could not prepare (bad data); "
        "their jobs prepare them and fail with the reason. Do not set.",
    )


@dataclass
class TuneConfig:
    """A tuning trial's link to its Optuna study (`hydra/sweeper=optuna` sets these per job:
    where the job reports its validation metric after each epoch and asks whether to stop; the
    metric and the pruner are the study's, `fefm_lab.tuning.trial`). Not part of the config hash."""

    storage: str | None = option(
        None, "set by the optuna sweeper: the study's Optuna storage URL. Do not set."
    )
    study: str | None = option(None, "set by the optuna sweeper: the study's name. Do not set.")
    trial: int | None = option(
        None,
        "set by the optuna sweeper: the trial's number in its study. Do not set.",
        int_at_least(0),
    )
    settings: str | None = option(
        None,
        "set by the optuna sweeper on the runs of a study's chosen settings over "
        "hydra.sweeper.final_seeds: those settings (the run's `tuned_settings` tag, which the "
        "ablation report shows). Do not set.",
    )


@dataclass
class AdaptiveSeedsConfig:
    """`hydra/sweeper=adaptive_seeds`: seeds added to each ablation until its verdicts settle.

    Looks at n = first_seeds, first_seeds + seeds_per_look, ..., max_seeds seeds; the runs are
    seeds 1..n of every point of the swept grid (`seed` itself is not swept). The verdicts use
    `report.margin` and `report.alpha` (the chance of any wrong verdict over every look,
    ablation and metric). See fefm_lab.sweep.adaptive_seeds for the rule and its error bound.
    """

    first_seeds: int = option(
        3, "seeds every ablation and its baseline run before the first look", int_at_least(2)
    )
    max_seeds: int = option(
        10, "the cap: seeds an ablation that never settles runs (>= first_seeds)", int_at_least(2)
    )
    seeds_per_look: int = option(
        2, "seeds added to each unsettled ablation (and its baseline) per look", int_at_least(1)
    )
    max_cpu_hours: float | None = option(
        None,
        "budget: no further look once the sweep's runs used this many CPU-hours (null = none)",
        POSITIVE,
    )
    max_wall_hours: float | None = option(
        None,
        "budget: no further look once this launch has run this many hours (null = none)",
        POSITIVE,
    )


@dataclass
class ServerConfig:
    """`fefm-lab server`: one MLflow tracking server for a team or a cluster; jobs log to it with
    mlflow.tracking_uri=http://HOST:PORT (checked further by fefm_lab.tracking.server)."""

    backend_store_uri: str | None = option(
        None,
        "the database the server keeps runs in (required): postgresql://USER[:PASSWORD]@HOST"
        "[:PORT]/DB for many machines (driver: the `cluster` extra), or "
        "sqlite:////ABSOLUTE/PATH.db for one machine",
    )
    artifacts_destination: str = option(
        "${paths.root_dir}/mlartifacts",
        "where the server stores run artifacts (jobs upload through it): a directory, made "
        "absolute, or an object store URI (s3://...)",
        NON_EMPTY_TEXT,
    )
    host: str = option(
        "127.0.0.1",
        "address to listen on; 0.0.0.0 = every interface (no authentication: trusted networks)",
        NON_EMPTY_TEXT,
    )
    port: int = option(5000, "port to listen on", PORT)
    workers: int = option(4, "server worker processes answering requests", int_at_least(1))
    allowed_hosts: list[str] = option(
        [],
        "extra names clients use for this machine (DNS aliases), accepted in the Host header "
        "besides the host itself, its name when host=0.0.0.0, and localhost",
    )


@dataclass
class SynthConfig:
    """`fefm-lab synth`: write a raw synthetic file with a planted teacher.

    Ranges are checked by `fefm_lab.data.synthesize` itself (rows >= 1, click_rate in (0, 1)).
    """

    format: str = option("criteo", "criteo (TSV) | avazu (CSV)")
    rows: int = option(100000, "rows to write (>= 1)")
    seed: int = option(0, "generator seed")
    click_rate: float = option(0.22, "share of clicks, in (0, 1)")
    teacher: str = option("pairs", "the planted teacher: pairs | deep (dataset.synthetic.teacher)")
    path: str = option(
        "${paths.data_root}/raw/synthetic_${synth.format}_${synth.rows}_seed${synth.seed}.txt",
        "the file to write",
    )


@dataclass
class MarginConfig:
    """Practical margins: a paired difference shown to lie inside +-margin is `equivalent`
    (fefm_lab/report/verdicts.py). 0.001 is the open CTR benchmarks' convention for "the same"
    AUC; choose a margin as the smallest difference that would change a decision."""

    auc: float = option(0.001, "margin of test AUC (and of AUC at the budget)", POSITIVE)
    logloss: float = option(
        0.001, "margin of test log loss (and of log loss at the budget)", POSITIVE
    )


@dataclass
class ReportConfig:
    """`fefm-lab report` reads the runs of mlflow.experiment; the sweep's report uses the rest."""

    sweep: str | None = option(None, "restrict the report to one sweep's runs (null = all)")
    margin: MarginConfig = section(MarginConfig, "equivalence margins per metric")
    alpha: float = option(
        0.05,
        "the chance of any false verdict over every test the report makes (and every look of "
        "an adaptive sweep), in (0, 1)",
        OPEN_FRACTION,
    )
    budget_epochs: int | None = option(
        None,
        "also compare every ablation with its baseline at this fixed budget of epochs "
        "(validation AUC and log loss after it, or at the run's end if it stopped earlier) "
        "with the same verdicts; null = only at convergence (test metrics)",
        int_at_least(1),
    )
    published: bool = option(
        True,
        "add a table of the runs on the open benchmark's datasets (criteo_x1, criteo_x4, "
        "avazu_x1, frappe_x1) beside its published test AUC / log loss "
        "(fefm_lab/report/published.py)",
    )


@dataclass
class FefmLabConfig:
    """The primary config: the groups (their own schemas) and the top-level settings."""

    dataset: Any = option(MISSING, "the data (group `dataset`; schemas in DATASET_SCHEMAS)")
    model: Any = option(MISSING, "the model (group `model`; schemas in MODEL_SCHEMAS)")
    trainer: Any = option(MISSING, "how to train (group `trainer`; schema TrainerConfig)")
    paths: Any = option(MISSING, "where to read and write (group `paths`; schema PathsConfig)")
    mlflow: Any = option(MISSING, "the tracking store (group `mlflow`; schema MlflowConfig)")
    server: Any = option(
        MISSING, "`fefm-lab server` settings (group `server`; schema ServerConfig)"
    )
    seed: int = option(
        1, "one seed drives the data split, the initialisation and the shuffling", int_at_least(0)
    )
    force: bool = option(False, "rerun configurations that already FINISHED in the tracking store")
    verbose: bool = option(
        False, "show TensorFlow's start-up INFO/WARNING lines (hidden by default)"
    )
    threads: int | None = option(
        None,
        "threads TensorFlow may use per job (null = its default; joblib jobs get cores / jobs)",
        int_at_least(1),
    )
    ablation: str = option(
        "none",
        "the ablation group's choice (set by the `ablation` option; runs are labelled "
        "by their flags, see fefm_lab.config.ablation.ablation_label)",
    )
    sweep: SweepConfig = section(SweepConfig, "the sweep's parent run")
    tune: TuneConfig = section(TuneConfig, "a tuning trial's Optuna study (set by the sweeper)")
    synth: SynthConfig = section(SynthConfig, "`fefm-lab synth` settings")
    report: ReportConfig = section(ReportConfig, "`fefm-lab report` settings")


# Sections validated against a schema (group name -> schema), besides model, trainer, dataset.
SECTION_SCHEMAS: dict[str, type] = {
    "paths": PathsConfig,
    "mlflow": MlflowConfig,
    "server": ServerConfig,
    "sweep": SweepConfig,
    "tune": TuneConfig,
    "synth": SynthConfig,
    "report": ReportConfig,
}
