"""Synthetic raw Criteo / Avazu files with a planted teacher, written in bounded memory.

Shape: categorical values drawn Zipf-like (p(rank r) ~ (r + 1)^-1.1) from per-field cardinalities
that follow the real data sets' and shrink with the row count; missing values at rates like the
real ones; heavy-tailed (log-normal) integer columns, I2 with a few negatives.

Labels come from a planted teacher: logit = b + sum_f w_f(value) + sum_i u_i * (log1p(x_i) - m_i)
+ sum over planted pairs (f, g) of s * e_f(value)^T W_fg e_g(value'), W_fg symmetric, e in R^4.
Every per-value weight and embedding is a hash of (seed, field, value rank), so nothing is stored
per value. b is calibrated on the first chunk so the click rate is `click_rate`. A linear model
cannot express the pair terms; a field-pair model can. The manifest beside the file
(`<file>.synth.json`) records the planted pairs and the teacher's own AUC (the ceiling).

Teacher kinds (`teacher`):
- `pairs` (the default, what `make run` trains on): the logit above with PLANTED_PAIRS pairs. Linear
  + FEFM (the shallow model) is its own family.
- `deep`: DEEP_PAIRS planted pairs (more FEFM-form signal, which the direct FEFM logit expresses
  with one weight per pair) plus a threshold term t * sign(z), z = sum over THRESHOLD_FIELDS
  complete fields of a_f(value), each a_f centred under its field's value distribution and z
  scaled to unit variance. sign(z) is a function of all those fields at once: per-field terms
  leave 35% of its variance and even a free table per field pair (more than linear + FEFM can
  express) leaves 26% at 40k rows, 24% at 80k (seed 0; a step's Hermite terms of order >= 3),
  while one ReLU layer over the field embeddings approximates a step of a weighted sum closely.
  So only a model with a DNN can reach the teacher.

Everything is a function of (seed, rows): rows are generated in chunks of CHUNK_ROWS, chunk c from
`default_rng([seed, c])`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from fefm_lab.config.dataset import SyntheticSource
from fefm_lab.config.schema import SYNTHETIC_TEACHERS
from fefm_lab.data.keys import splitmix64, uniform01
from fefm_lab.data.layout import AVAZU_COLUMNS, CRITEO_CATEGORICAL, CRITEO_INTEGER
from fefm_lab.data.split import TEST, assign_splits
from fefm_lab.fileio import atomic_path, atomic_write_text

LOG = logging.getLogger("fefm_lab.data")
CHUNK_ROWS = 200_000
ZIPF_EXPONENT = 1.1
EMBEDDING_DIM = 4
PLANTED_PAIRS = 4
PAIR_STRENGTH = 1.2
LINEAR_SCALE = 0.15
DEEP_PAIRS = 8
THRESHOLD_FIELDS = 6
THRESHOLD_STRENGTH = 1.5

CRITEO_ROWS = 45_840_617
CRITEO_CARDINALITY = (1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683,
                      8351593, 3194, 27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15,
                      286181, 105, 142572)  # fmt: skip
CRITEO_CAT_MISSING = (0, 0, 0.03, 0.03, 0, 0.12, 0, 0, 0, 0.03, 0, 0.03, 0, 0, 0, 0.03, 0, 0,
                      0.44, 0.44, 0.03, 0.76, 0, 0.03, 0.44, 0.44)  # fmt: skip
CRITEO_INT_MISSING = (0.45, 0, 0.21, 0.22, 0.03, 0.22, 0.04, 0.001, 0.04, 0.45, 0.04, 0.76,
                      0.22)  # fmt: skip
CRITEO_INT_LOG_MEDIAN = (0.7, 1.4, 2.0, 1.6, 8.0, 3.4, 1.4, 2.2, 3.6, 0.4, 0.7, 0.1, 1.4)
CRITEO_INT_LOG_SPREAD = (1.1, 1.6, 1.5, 1.0, 1.8, 1.8, 1.5, 1.0, 1.3, 0.6, 0.9, 1.0, 1.2)

AVAZU_ROWS = 40_428_967
AVAZU_CARDINALITY = {
    "C1": 7, "banner_pos": 7, "site_id": 4737, "site_domain": 7745, "site_category": 26,
    "app_id": 8552, "app_domain": 559, "app_category": 36, "device_id": 2686408,
    "device_ip": 6729486, "device_model": 8251, "device_type": 5, "device_conn_type": 4,
    "C14": 2626, "C15": 8, "C16": 9, "C17": 435, "C18": 4, "C19": 68, "C20": 172, "C21": 60,
}  # fmt: skip
AVAZU_HEX_FIELDS = ("site_id", "site_domain", "site_category", "app_id", "app_domain",
                    "app_category", "device_id", "device_ip", "device_model")  # fmt: skip
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def scaled_cardinality(real: int, rows: int, real_rows: int) -> int:
    """Distinct values of a field at `rows` rows: small fields keep theirs, large ones shrink."""
    scaled = int(np.ceil(real * (rows / real_rows) ** 0.8))
    return max(min(real, 50), min(real, scaled))


@dataclass(frozen=True)
class _Field:
    name: str
    index: int
    cardinality: int
    missing_rate: float
    hex_values: bool


def _mix_tag(*parts: int) -> int:
    value = np.uint64(0)
    for part in parts:
        value = splitmix64(np.array([value ^ np.uint64(part & 0xFFFFFFFFFFFFFFFF)]))[0]
    return int(value)


def _normal(tag: int, index: np.ndarray) -> np.ndarray:
    """Standard normals, a pure function of (tag, index) (Box-Muller on hashed uniforms)."""
    u1 = np.maximum(uniform01(tag, index), 1e-300)
    u2 = uniform01(tag ^ 0x5DEECE66D, index)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


class _Teacher:
    """The planted model: per-value weights and embeddings derived from hashes."""

    def __init__(
        self,
        seed: int,
        fields: list[_Field],
        integer_columns: tuple[str, ...],
        kind: str = "pairs",
        cdfs: dict[int, np.ndarray] | None = None,
    ):
        if kind not in SYNTHETIC_TEACHERS:
            raise ValueError(
                f"teacher must be one of {', '.join(SYNTHETIC_TEACHERS)}, received {kind!r}"
            )
        self.seed = seed
        self.kind = kind
        self.fields = fields
        self.integer_columns = integer_columns
        rng = np.random.default_rng([seed, 7919])
        # Pairs among the smaller fields, whose value pairs recur often enough to be learnt.
        planted = PLANTED_PAIRS if kind == "pairs" else DEEP_PAIRS
        by_size = sorted((f for f in fields if f.cardinality >= 3), key=lambda f: f.cardinality)
        candidates = [f.index for f in by_size if f.cardinality <= 200]
        if len(candidates) < 2 * planted:
            candidates = [f.index for f in by_size[: 2 * planted]]
        chosen = rng.choice(candidates, size=2 * planted, replace=False)
        self.pairs = sorted(
            tuple(sorted((int(chosen[2 * p]), int(chosen[2 * p + 1])))) for p in range(planted)
        )
        self.pair_matrices = []
        for _ in self.pairs:
            raw = rng.normal(size=(EMBEDDING_DIM, EMBEDDING_DIM))
            symmetric = (raw + raw.T) / 2.0
            self.pair_matrices.append(symmetric / np.sqrt((symmetric**2).sum() / EMBEDDING_DIM))
        self.integer_weights = rng.normal(scale=0.2, size=len(integer_columns))
        self.threshold_fields: list[int] = []
        self.threshold_means: dict[int, float] = {}
        self.threshold_scale = 1.0
        if kind == "deep":
            self._plant_threshold(cdfs if cdfs is not None else {})

    def _plant_threshold(self, cdfs: dict[int, np.ndarray]) -> None:
        """Pick the threshold term's fields (complete, small) and centre their scores."""
        rng = np.random.default_rng([self.seed, 7919, 1])
        complete = [f for f in self.fields if f.missing_rate == 0 and 3 <= f.cardinality <= 200]
        if len(complete) < THRESHOLD_FIELDS:
            complete = sorted(self.fields, key=lambda f: (f.missing_rate, f.cardinality))
        chosen = rng.choice([f.index for f in complete], size=THRESHOLD_FIELDS, replace=False)
        self.threshold_fields = sorted(int(i) for i in chosen)
        variance = 0.0
        by_index = {f.index: f for f in self.fields}
        for index in self.threshold_fields:
            field = by_index[index]
            cdf = cdfs.get(index, _zipf_cdf(field.cardinality))
            probabilities = np.diff(cdf, prepend=0.0)
            scores = self.score(field, np.arange(field.cardinality))
            mean = float(probabilities @ scores)
            self.threshold_means[index] = mean
            variance += float(probabilities @ (scores - mean) ** 2)
        self.threshold_scale = 1.0 / np.sqrt(variance)

    def score(self, field: _Field, ranks: np.ndarray) -> np.ndarray:
        """a_f(value): the per-value score the threshold term sums (uncentred)."""
        return _normal(_mix_tag(self.seed, 4, field.index), ranks)

    def threshold(self, ranks: dict[int, np.ndarray]) -> np.ndarray:
        """t * sign(z), z = sum_f (a_f - E a_f) / sqrt(sum_f Var a_f); zeros for `pairs`."""
        n = len(next(iter(ranks.values())))
        if not self.threshold_fields:
            return np.zeros(n)
        by_index = {f.index: f for f in self.fields}
        z = np.zeros(n)
        for index in self.threshold_fields:
            z += self.score(by_index[index], ranks[index]) - self.threshold_means[index]
        return THRESHOLD_STRENGTH * np.sign(z * self.threshold_scale)

    def linear(self, field: _Field, ranks: np.ndarray) -> np.ndarray:
        return LINEAR_SCALE * _normal(_mix_tag(self.seed, 1, field.index), ranks)

    def embedding(self, field: _Field, ranks: np.ndarray) -> np.ndarray:
        return np.stack(
            [_normal(_mix_tag(self.seed, 2, field.index, c), ranks) for c in range(EMBEDDING_DIM)],
            axis=1,
        )

    def logit(
        self, ranks: dict[int, np.ndarray], missing: dict[int, np.ndarray], integers: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(teacher logit without the bias, its pair terms, its threshold term).

        `integers`: log1p(x) - median per integer column (zero where missing).
        """
        n = integers.shape[0]
        total = integers @ self.integer_weights if integers.shape[1] else np.zeros(n)
        for field in self.fields:
            total += np.where(missing[field.index], 0.0, self.linear(field, ranks[field.index]))
        by_index = {f.index: f for f in self.fields}
        pairs = np.zeros(n)
        for (a, b), matrix in zip(self.pairs, self.pair_matrices, strict=True):
            left = self.embedding(by_index[a], ranks[a])
            right = self.embedding(by_index[b], ranks[b])
            term = np.einsum("nk,kl,nl->n", left, matrix, right) / np.sqrt(EMBEDDING_DIM)
            present = ~(missing[a] | missing[b])
            pairs += np.where(present, PAIR_STRENGTH * term, 0.0)
        if self.kind == "pairs":
            return total + pairs, pairs, np.zeros(n)
        threshold = self.threshold(ranks)
        return total + pairs + threshold, pairs, threshold


def teacher_settings(kind: str) -> dict[str, Any]:
    """The constants a teacher kind's labels depend on (recorded in the manifest: a cached file
    made with other settings is regenerated)."""
    settings: dict[str, Any] = {
        "kind": kind,
        "pairs": PLANTED_PAIRS if kind == "pairs" else DEEP_PAIRS,
        "pair_strength": PAIR_STRENGTH,
    }
    if kind == "deep":
        settings |= {"threshold_fields": THRESHOLD_FIELDS, "threshold_strength": THRESHOLD_STRENGTH}
    return settings


def _zipf_cdf(cardinality: int) -> np.ndarray:
    weights = (np.arange(cardinality, dtype=np.float64) + 1.0) ** -ZIPF_EXPONENT
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _hex_strings(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    """8-character lowercase hex of uint32 values, built without per-row Python."""
    n = len(values)
    shifts = np.arange(28, -1, -4, dtype=np.uint64)
    nibbles = (values.astype(np.uint64)[:, None] >> shifts) & np.uint64(15)
    data = _HEX[nibbles.astype(np.intp)].reshape(-1)
    offsets = np.arange(0, 8 * n + 1, 8, dtype=np.int32)
    bitmap = np.packbits(valid, bitorder="little")
    return pa.StringArray.from_buffers(
        n,
        pa.py_buffer(offsets.tobytes()),
        pa.py_buffer(data.tobytes()),
        pa.py_buffer(bitmap.tobytes()),
        null_count=int(n - valid.sum()),
    )


def _value_codes(seed: int, field: _Field, ranks: np.ndarray) -> np.ndarray:
    """The 32-bit code a value rank is written as (a hash, like the real data's)."""
    tag = np.uint64(_mix_tag(seed, 3, field.index))
    return (splitmix64(ranks.astype(np.uint64) ^ tag) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


class _Generator:
    def __init__(self, raw_format: str, rows: int, seed: int, teacher: str = "pairs"):
        self.format = raw_format
        self.rows = rows
        self.seed = seed
        if raw_format == "criteo":
            self.fields = [
                _Field(
                    name,
                    i,
                    scaled_cardinality(CRITEO_CARDINALITY[i], rows, CRITEO_ROWS),
                    CRITEO_CAT_MISSING[i],
                    True,
                )
                for i, name in enumerate(CRITEO_CATEGORICAL)
            ]
            self.integer_columns = CRITEO_INTEGER
        elif raw_format == "avazu":
            self.fields = [
                _Field(
                    name,
                    i,
                    scaled_cardinality(real, rows, AVAZU_ROWS),
                    0.0,
                    name in AVAZU_HEX_FIELDS,
                )
                for i, (name, real) in enumerate(AVAZU_CARDINALITY.items())
            ]
            self.integer_columns = ()
        else:
            raise ValueError(f"synthetic format must be criteo or avazu, received {raw_format!r}")
        self.cdfs = {f.index: _zipf_cdf(f.cardinality) for f in self.fields}
        self.teacher = _Teacher(seed, self.fields, self.integer_columns, teacher, self.cdfs)
        self.hour_weights = np.random.default_rng([seed, 24]).normal(scale=0.3, size=24)
        self.bias = 0.0

    def chunk(
        self, index: int
    ) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(columns, logits without bias, pair terms, threshold terms, label uniforms)."""
        start = index * CHUNK_ROWS
        n = min(CHUNK_ROWS, self.rows - start)
        rng = np.random.default_rng([self.seed, index])
        ranks, missing = {}, {}
        for field in self.fields:
            ranks[field.index] = np.searchsorted(self.cdfs[field.index], rng.random(n))
            missing[field.index] = rng.random(n) < field.missing_rate
        columns: dict[str, Any] = {}
        integers = np.zeros((n, len(self.integer_columns)))
        for j, name in enumerate(self.integer_columns):
            noise = rng.normal(size=n)
            raw = np.exp(CRITEO_INT_LOG_MEDIAN[j] + CRITEO_INT_LOG_SPREAD[j] * noise)
            values = np.floor(raw).astype(np.int64) - 1
            if name == "I2":
                values = np.where(rng.random(n) < 0.05, -rng.integers(1, 4, n), values)
            absent = rng.random(n) < CRITEO_INT_MISSING[j]
            integers[:, j] = np.where(absent, 0.0, np.log1p(np.maximum(values, 0)))
            integers[:, j] -= CRITEO_INT_LOG_MEDIAN[j]
            integers[absent, j] = 0.0
            columns[name] = pa.array(values, mask=absent)
        logits, pair_terms, threshold_terms = self.teacher.logit(ranks, missing, integers)
        if self.format == "avazu":
            hour_index = (np.arange(start, start + n) * 240) // self.rows
            hour_of_day = hour_index % 24
            logits += self.hour_weights[hour_of_day]
            columns["hour"] = pa.array((141021 + hour_index // 24) * 100 + hour_of_day)
            ids = splitmix64(np.arange(start, start + n, dtype=np.uint64) ^ np.uint64(self.seed))
            columns["id"] = pc.cast(pa.array(ids), pa.string())
        for field in self.fields:
            codes = _value_codes(self.seed, field, ranks[field.index])
            if field.hex_values:
                columns[field.name] = _hex_strings(codes, ~missing[field.index])
            else:
                columns[field.name] = pa.array(
                    ranks[field.index] + 1000 * (field.index + 1), mask=missing[field.index]
                )
        return columns, logits, pair_terms, threshold_terms, rng.random(n)

    def calibrate(self, click_rate: float) -> None:
        """Bias so the first chunk's mean teacher probability equals `click_rate` (bisection)."""
        _, logits, _, _, _ = self.chunk(0)
        low, high = -20.0, 20.0
        for _ in range(60):
            middle = (low + high) / 2
            if np.mean(1.0 / (1.0 + np.exp(-(logits + middle)))) < click_rate:
                low = middle
            else:
                high = middle
        self.bias = (low + high) / 2

    def table(self, columns: dict[str, Any], labels: np.ndarray) -> pa.Table:
        if self.format == "criteo":
            names = ["label", *CRITEO_INTEGER, *CRITEO_CATEGORICAL]
            columns["label"] = pa.array(labels.astype(np.int8))
        else:
            names = list(AVAZU_COLUMNS)
            columns["click"] = pa.array(labels.astype(np.int8))
        return pa.table({name: columns[name] for name in names})


def synthesize(
    path: str | Path,
    *,
    format: str = "criteo",
    rows: int,
    seed: int = 0,
    click_rate: float = 0.22,
    split_seed: int | None = None,
    progress: bool = True,
    teacher: str = "pairs",
) -> dict[str, Any]:
    """Write `rows` rows of raw Criteo-format TSV or Avazu-format CSV to `path` (.gz: gzip).

    Deterministic from `seed`. Written atomically with its manifest `<path>.synth.json`
    (returned), which records the planted pairs, the bias, the click rate and the teacher's AUC on
    all rows and on the test split of the default shuffled 0.64/0.16/0.20 split with `split_seed`
    (default: `seed`). `teacher`: pairs (default) | deep (module docstring); a deep teacher's
    manifest also records its threshold fields and the AUC of its logit without the threshold term.
    """
    if rows < 1:
        raise ValueError(f"rows must be >= 1, received {rows!r}")
    if not 0.0 < click_rate < 1.0:
        raise ValueError(f"click_rate must be in (0, 1), received {click_rate!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = _Generator(format, rows, seed, teacher)
    generator.calibrate(click_rate)
    split_seed = seed if split_seed is None else split_seed
    probabilities = np.empty(rows, dtype=np.float32)
    without_pairs = np.empty(rows, dtype=np.float32)
    without_threshold = np.empty(rows, dtype=np.float32)
    labels = np.empty(rows, dtype=np.int8)
    started = time.perf_counter()
    separator = "\t" if format == "criteo" else ","
    write_options = pacsv.WriteOptions(
        include_header=False, delimiter=separator, quoting_style="none"
    )
    with atomic_path(path) as temporary:
        sink = (
            pa.CompressedOutputStream(str(temporary), "gzip")
            if path.suffix == ".gz"
            else pa.OSFile(str(temporary), "wb")
        )
        with sink:
            if format == "avazu":
                sink.write(separator.join(AVAZU_COLUMNS).encode() + b"\n")
            for index in range(-(-rows // CHUNK_ROWS)):
                columns, logits, pair_terms, threshold_terms, coins = generator.chunk(index)
                start = index * CHUNK_ROWS
                chunk_probabilities = 1.0 / (1.0 + np.exp(-(logits + generator.bias)))
                chunk_labels = (coins < chunk_probabilities).astype(np.int8)
                probabilities[start : start + len(logits)] = chunk_probabilities
                without_pairs[start : start + len(logits)] = logits - pair_terms
                without_threshold[start : start + len(logits)] = logits - threshold_terms
                labels[start : start + len(logits)] = chunk_labels
                pacsv.write_csv(generator.table(columns, chunk_labels), sink, write_options)
                if progress:
                    done = start + len(logits)
                    LOG.info("synth %s: %s / %s rows", path.name, f"{done:,}", f"{rows:,}")
        manifest = _manifest(
            generator, path, rows, seed, click_rate, split_seed, probabilities, labels
        )
        test = _test_rows(rows, split_seed)
        # What the teacher's own non-pair terms reach: the pairs' share of the signal.
        manifest["teacher_auc_without_pairs"] = {
            "all": _auc(labels, without_pairs),
            "test": _auc(labels[test], without_pairs[test]),
        }
        if teacher == "deep":
            # What the teacher reaches without its threshold term: the share no
            # per-field-plus-pair model can take.
            manifest["teacher_auc_without_threshold"] = {
                "all": _auc(labels, without_threshold),
                "test": _auc(labels[test], without_threshold[test]),
            }
        manifest["seconds"] = round(time.perf_counter() - started, 3)
    atomic_write_text(manifest_path_for(path), json.dumps(manifest, indent=2) + "\n")
    return manifest


def manifest_path_for(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".synth.json")


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    if labels.min(initial=1) == labels.max(initial=0):
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def _test_rows(rows: int, split_seed: int) -> np.ndarray:
    return assign_splits(np.arange(rows), "shuffled", (0.64, 0.16, 0.20), split_seed) == TEST


def _manifest(generator, path, rows, seed, click_rate, split_seed, probabilities, labels) -> dict:
    names = {f.index: f.name for f in generator.fields}
    test = _test_rows(rows, split_seed)
    return {
        "file": path.name,
        "format": generator.format,
        "rows": rows,
        "seed": seed,
        "positives": int(labels.sum()),
        "click_rate": float(labels.mean()),
        "target_click_rate": click_rate,
        "bias": generator.bias,
        "planted_pairs": [[names[a], names[b]] for a, b in generator.teacher.pairs],
        "pair_strength": PAIR_STRENGTH,
        "teacher": generator.teacher.kind,
        "teacher_settings": teacher_settings(generator.teacher.kind),
        **(
            {
                "threshold_fields": [names[i] for i in generator.teacher.threshold_fields],
                "threshold_strength": THRESHOLD_STRENGTH,
            }
            if generator.teacher.kind == "deep"
            else {}
        ),
        "cardinalities": {f.name: f.cardinality for f in generator.fields},
        "teacher_auc": {
            "all": _auc(labels, probabilities),
            "test": _auc(labels[test], probabilities[test]),
            "test_split": {"mode": "shuffled", "fractions": [0.64, 0.16, 0.20], "seed": split_seed},
        },
        "teacher_log_loss_all": float(
            -np.mean(
                labels * np.log(np.clip(probabilities, 1e-7, 1))
                + (1 - labels) * np.log(np.clip(1 - probabilities, 1e-7, 1))
            )
        ),
    }


def synthetic_path(source: SyntheticSource, data_root: Path) -> Path:
    """Where `dataset=synthetic` keeps its generated raw file under `data_root/synthetic/`."""
    suffix = "txt" if source.format == "criteo" else "csv"
    # the default teacher keeps the name files had before teachers had kinds
    kind = "" if source.teacher == "pairs" else f"-{source.teacher}"
    name = f"{source.format}-{source.rows}-seed{source.seed}{kind}.{suffix}"
    return Path(data_root) / "synthetic" / name


def _made_by(manifest_path: Path, kind: str) -> bool:
    """Whether the manifest says its file was made with `kind`'s current teacher settings (files
    from before teacher kinds were recorded used the `pairs` teacher)."""
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    recorded = manifest.get("teacher_settings", teacher_settings("pairs"))
    if recorded == teacher_settings(kind):
        return True
    LOG.info("%s was made with teacher %s; regenerating it", manifest_path.name, recorded)
    return False


def ensure_synthetic(
    source: SyntheticSource, data_root: Path, progress: bool | Any = True
) -> tuple[Path, str]:
    """The cached raw file of `dataset=synthetic` under `data_root/synthetic/`, made on demand."""
    path = synthetic_path(source, data_root)
    if not (path.is_file() and _made_by(manifest_path_for(path), source.teacher)):
        synthesize(
            path,
            format=source.format,
            rows=source.rows,
            seed=source.seed,
            progress=progress is True,
            teacher=source.teacher,
        )
    return path.absolute(), source.format
