"""Raw file -> prepared dataset directory, streaming in two passes.

Pass 1 reads the source once, assigns splits, counts each sparse field's values on the train split
(hashed 64-bit keys, distinct per chunk, spilled to the temporary directory partitioned by key hash
and counted a group of hash buckets at a time) and the dense fields' train min/max. Pass 2 reads
it again and writes ids and scaled values to Arrow IPC shards per split. Memory holds one chunk,
a bounded number of pending counts per field and one bucket group, never the file nor a table of
every distinct value.

The directory is named `<name>-<digest>`, the digest a hash of the source fingerprint (size, mtime
and SHA-256 of its first and last MiB) and every setting that changes the content. It is built in a
`.tmp-...` directory beside it and renamed at the end, its manifest written last: a directory
without a manifest is never trusted, and a complete one is reused without reading the source.
The manifest's `seconds` say where the time went: `count_rows` (the line count a sequential split
needs), `pass1`, `vocabularies` (merging the spilled counts, on one core) and `pass2`. Its
`peak_rss_bytes` say where the memory went: the process's peak resident set (VmHWM, a running
maximum) when preparation started (`start`) and at the end of each of those phases, so the phase
that set the peak is the first one that shows it (in a process that did other work first, the
`start` figure bounds what preparation itself can be credited with).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat as stat_module
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from fefm_lab.config.dataset import DatasetConfig, validate_dataset_config
from fefm_lab.data.checksums import verify_md5
from fefm_lab.data.encode import dense_values, min_max_scale, sparse_keys
from fefm_lab.data.feature_map import DENSE, SPARSE, FeatureMap, FieldSpec
from fefm_lab.data.layout import SourceLayout, layout_for
from fefm_lab.data.prepared import (
    FEATURE_MAP,
    LABEL_COLUMN,
    MANIFEST,
    SPLITS,
    PreparedData,
    shard_schema,
)
from fefm_lab.data.reader import SplitFilesSource, count_data_rows, open_source, prefetched
from fefm_lab.data.split import TRAIN, assign_splits
from fefm_lab.data.vocab import MISSING_ID, OOV_ID, ValueCounter
from fefm_lab.errors import DataError
from fefm_lab.fileio import atomic_write_text
from fefm_lab.memory import peak_rss_bytes, release_free_memory

LOG = logging.getLogger("fefm_lab.data")
LAYOUT_VERSION = 1
_FINGERPRINT_BYTES = 1 << 20

ProgressCallback = Callable[[str, int, float], None]


def source_fingerprint(path: Path) -> dict[str, Any]:
    """Size, mtime and SHA-256 of the first and last MiB: cheap, and changes when the file does."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    if not stat_module.S_ISREG(stat.st_mode):
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise DataError(f"{path}: {kind}; dataset.path must name a data file")
    if stat.st_size == 0:
        raise DataError(f"{path}: the file is empty; expected data rows")
    with open(path, "rb") as handle:
        head = hashlib.sha256(handle.read(_FINGERPRINT_BYTES)).hexdigest()
        handle.seek(max(0, stat.st_size - _FINGERPRINT_BYTES))
        tail = hashlib.sha256(handle.read(_FINGERPRINT_BYTES)).hexdigest()
    return {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "head_sha256": head,
        "tail_sha256": tail,
    }


class _Progress:
    """Reports (stage, rows, seconds) to a callback, or shows the pass's progress on stderr
    (a bar on a terminal, a plain line every few seconds elsewhere: rows, MB/s, time left)."""

    def __init__(self, progress: bool | ProgressCallback, every_s: float = 5.0):
        self.callback = progress if callable(progress) else None
        self.log = progress is True
        self.every_s = every_s
        self.stage = ""
        self.start = time.perf_counter()
        self.rows = 0
        self.source = None
        self.display = None

    def begin(self, stage: str, source=None) -> None:
        """Start a pass; `source` (a reader) says how many bytes of its file it has read."""
        self.stage, self.rows, self.source = stage, 0, source
        self.start = time.perf_counter()
        if self.log:
            from fefm_lab.progress import PassProgress

            total = None
            if source is not None and hasattr(source, "bytes_read"):
                total = source.path.stat().st_size
            self.display = PassProgress(every_seconds=self.every_s)
            self.display.start(stage, total)

    def update(self, rows: int, final: bool = False) -> float:
        self.rows += rows
        elapsed = time.perf_counter() - self.start
        if self.callback is not None:
            self.callback(self.stage, self.rows, elapsed)
        if self.display is not None:
            self.display.update(self.rows, getattr(self.source, "bytes_read", None))
            if final:
                self.display.finish()
                self.display = None
        return elapsed


class _ShardWriter:
    """Writes one split's rows to numbered Arrow IPC files of at most `shard_rows` rows."""

    def __init__(self, directory: Path, split: str, schema: pa.Schema, shard_rows: int):
        self.directory = directory
        self.split = split
        self.schema = schema
        self.shard_rows = shard_rows
        self.shards: list[str] = []
        self._writer: ipc.RecordBatchFileWriter | None = None
        self._sink = None
        self._rows_in_shard = 0
        (directory / split).mkdir(parents=True, exist_ok=True)

    def _open(self) -> None:
        name = f"{self.split}/part-{len(self.shards):05d}.arrow"
        self.shards.append(name)
        self._sink = pa.OSFile(str(self.directory / name), "wb")
        self._writer = ipc.new_file(self._sink, self.schema)
        self._rows_in_shard = 0

    def write(self, table: pa.Table) -> None:
        offset = 0
        while offset < table.num_rows:
            if self._writer is None or self._rows_in_shard >= self.shard_rows:
                self.close()
                self._open()
            take = min(self.shard_rows - self._rows_in_shard, table.num_rows - offset)
            self._writer.write_table(table.slice(offset, take))
            self._rows_in_shard += take
            offset += take

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = None


def _field_plan(config: DatasetConfig, layout: SourceLayout, column_names) -> list[tuple[str, str]]:
    """(field name, encoding) in file order."""
    plan = []
    for name in layout.field_order(tuple(column_names)):
        if name in layout.categorical:
            plan.append((name, "string"))
        elif name in layout.hour_of_day:
            plan.append((name, "hour_of_day"))
        elif config.integer_encoding == "dense_minmax":
            plan.append((name, "dense_minmax"))
        elif config.integer_encoding == "log_bucket":
            plan.append((name, "log_bucket"))
        else:
            plan.append((name, "integer"))
    return plan


class PreparedDataMissing(DataError):
    """`prepare(..., reuse_only=True)` found no complete prepared dataset for the settings."""


def _source_path(
    config: DatasetConfig, data_root: Path, progress, generate: bool = True
) -> tuple[Path, str]:
    if config.format == "synthetic":
        from fefm_lab.data.synthetic import ensure_synthetic, synthetic_path

        if not generate:
            return synthetic_path(config.synthetic, data_root).absolute(), config.synthetic.format
        return ensure_synthetic(config.synthetic, data_root, progress=progress)
    return Path(os.path.expanduser(config.path)).absolute(), config.format


def split_file_paths(config: DatasetConfig, folder: Path) -> list[Path]:
    """The [train, validation, test] files of a `split: given` dataset, each a regular file."""
    paths = [folder / name for name in config.split_files]
    if not folder.is_dir():
        what = "no such folder" if not folder.exists() else "not a folder"
        raise DataError(
            f"{folder}: {what}; with dataset.split=given, dataset.path names the folder holding "
            f"{', '.join(config.split_files)}"
        )
    for path in paths:
        if not path.is_file():
            raise DataError(
                f"{path}: no such file; dataset.split_files expects "
                f"{', '.join(config.split_files)} in {folder}"
            )
    return paths


def _fingerprint(config: DatasetConfig, source_path: Path) -> dict[str, Any]:
    if config.split != "given":
        return source_fingerprint(source_path)
    return {"files": [source_fingerprint(p) for p in split_file_paths(config, source_path)]}


def prepare(
    dataset_cfg: Any,
    *,
    seed: int,
    data_root: str | Path,
    progress: bool | ProgressCallback = True,
    reuse_only: bool = False,
) -> PreparedData:
    """Prepare (or reuse) the dataset described by `dataset_cfg` under `data_root/prepared/`.

    `seed` decides the shuffled split unless `dataset.split_seed` is set. `progress`: True logs
    rows/s through the `fefm_lab.data` logger, a callable receives (stage, rows, seconds),
    False is silent. Raises ConfigError for bad settings and DataError for bad data, leaving no
    prepared directory behind. `reuse_only`: never generate or build (a sweep job whose launching
    process prepared the data); raises PreparedDataMissing when no complete directory is found.
    """
    config = validate_dataset_config(dataset_cfg)
    data_root = Path(data_root)
    reporter = _Progress(progress)
    source_path, raw_format = _source_path(config, data_root, progress, generate=not reuse_only)
    settings = {**config.settings(), "raw_format": raw_format}
    if config.split != "given":
        settings["split_seed"] = config.split_seed if config.split_seed is not None else int(seed)
    prepared_root = data_root / "prepared"
    index_path = (
        prepared_root / ".sources" / (_digest({"path": str(source_path), **settings}) + ".json")
    )

    reused = _reuse_from_index(index_path, source_path, config)
    if reused is not None:
        return reused
    if reuse_only:
        raise PreparedDataMissing(
            f"no complete prepared dataset {config.name!r} for source {source_path} under "
            f"{prepared_root}"
        )
    fingerprint = _fingerprint(config, source_path)
    digest = _digest({"source": fingerprint, "settings": settings, "layout": LAYOUT_VERSION})
    final = prepared_root / f"{config.name}-{digest}"
    if (final / MANIFEST).is_file():
        _write_index(index_path, source_path, fingerprint, final)
        return PreparedData.open(final)

    if config.split == "given" and config.md5 is not None:
        verify_md5(split_file_paths(config, source_path), config.md5)
    layout = layout_for(config, raw_format)
    built = _build(config, layout, source_path, settings, fingerprint, digest, final, reporter)
    _write_index(index_path, source_path, fingerprint, built.directory)
    return built


def _digest(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def _stats(config: DatasetConfig, source_path: Path) -> list[list[int]]:
    """[size, mtime_ns] of the source file, or of each split file of a `split: given` folder."""
    paths = (
        [source_path / n for n in config.split_files] if config.split == "given" else [source_path]
    )
    stats = [p.stat() for p in paths]
    return [[s.st_size, s.st_mtime_ns] for s in stats]


def _reuse_from_index(
    index_path: Path, source_path: Path, config: DatasetConfig
) -> PreparedData | None:
    """A complete directory recorded for this source and settings, when the source is unchanged
    (same size and mtime of each file: no byte is read) or gone (moved away after preparing)."""
    if not index_path.is_file():
        return None
    try:
        entry = json.loads(index_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    directory = Path(entry["directory"])
    if not (directory / MANIFEST).is_file():
        return None
    try:
        stats = _stats(config, source_path)
    except FileNotFoundError:
        LOG.info("%s is gone; reusing its prepared dataset %s", source_path, directory)
        return PreparedData.open(directory)
    if stats == entry.get("stats", [[entry.get("size"), entry.get("mtime_ns")]]):
        return PreparedData.open(directory)
    return None


def _write_index(index_path: Path, source: Path, fingerprint: dict, directory: Path) -> None:
    index_path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"source": str(source), "directory": str(directory.absolute()), **fingerprint}
    if "files" in fingerprint:
        entry["stats"] = [[f["size"], f["mtime_ns"]] for f in fingerprint["files"]]
    atomic_write_text(index_path, json.dumps(entry, indent=2))


def _remove_stale_temporaries(final: Path) -> None:
    """Remove `.tmp-<name>-<pid>-*` directories left by killed preparations of this dataset."""
    for candidate in final.parent.glob(f".tmp-{final.name}-*"):
        try:
            pid = int(candidate.name[len(f".tmp-{final.name}-") :].split("-")[0])
        except ValueError:
            continue
        alive = True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive or pid == os.getpid():
            shutil.rmtree(candidate, ignore_errors=True)


def _build(
    config: DatasetConfig,
    layout: SourceLayout,
    source_path: Path,
    settings: dict[str, Any],
    fingerprint: dict[str, Any],
    digest: str,
    final: Path,
    reporter: _Progress,
) -> PreparedData:
    if config.split == "given":
        paths = split_file_paths(config, source_path)
        source = SplitFilesSource(paths, layout, config.on_bad_rows, config.block_bytes)
    else:
        source = open_source(source_path, layout, config.on_bad_rows, config.block_bytes)
    peaks = {"start": peak_rss_bytes()}
    started = time.perf_counter()
    total_rows = count_data_rows(source) if config.split == "sequential" else None
    count_s = time.perf_counter() - started
    _record_peak(peaks, "count_rows")

    def splits_of(rows: np.ndarray) -> np.ndarray:
        return assign_splits(
            rows, config.split, config.split_fractions, settings.get("split_seed", 0), total_rows
        )

    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(final)
    temporary = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        counting = temporary / "counts"
        plan, vocabularies, dense_range, rows_seen, bad_rows, pass1_times = _count_train_values(
            config, source, splits_of, layout, counting, reporter, peaks
        )
        shutil.rmtree(counting, ignore_errors=True)
        if plan is None or rows_seen == bad_rows:
            raise DataError(f"{source_path}: no valid data rows (bad rows skipped: {bad_rows})")
        fields = []
        for name, encoding in plan:
            if encoding == "dense_minmax":
                low, high = dense_range[name]
                if not np.isfinite(low):
                    low = high = 0.0
                fields.append(FieldSpec(name, DENSE, encoding, scale_min=low, scale_max=high))
            else:
                vocab = vocabularies[name]
                fields.append(
                    FieldSpec(
                        name,
                        SPARSE,
                        encoding,
                        vocabulary_size=vocab.size,
                        missing_id=MISSING_ID,
                        oov_id=OOV_ID,
                        distinct_train_values=vocab.distinct_values,
                    )
                )
        feature_map = FeatureMap(tuple(fields), label=layout.label)

        split_stats, pass2_s = _write_shards(
            config, source, plan, vocabularies, feature_map, splits_of, temporary, reporter
        )
        _record_peak(peaks, "pass2")
        (temporary / "vocabularies").mkdir()
        for name, vocab in vocabularies.items():
            np.save(temporary / "vocabularies" / f"{name}.npy", vocab.keys_in_id_order)
        feature_map.save(temporary / FEATURE_MAP)
        from fefm_lab import __version__

        manifest = {
            "fefm_lab_version": __version__,
            "layout_version": LAYOUT_VERSION,
            "name": config.name,
            "fingerprint": digest,
            "source": {"path": str(source_path), **fingerprint},
            "settings": settings,
            "rows_read": rows_seen,
            "bad_rows": bad_rows,
            "splits": split_stats,
            "seconds": {
                "count_rows": round(count_s, 3),
                "pass1": round(pass1_times[0], 3),
                "vocabularies": round(pass1_times[1], 3),
                "pass2": round(pass2_s, 3),
            },
            "peak_rss_bytes": peaks,
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "keys": "vocabularies/<field>.npy: uint64 value keys in id order (first id 2)",
        }
        if config.split == "given":
            # the published MD5s the files matched before preparing (null: not checked)
            manifest["md5_checked"] = list(config.md5) if config.md5 else None
        atomic_write_text(temporary / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        try:
            os.rename(temporary, final)
        except OSError:
            # Another process finished the same preparation first: use its directory.
            if not (final / MANIFEST).is_file():
                raise
            shutil.rmtree(temporary, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return PreparedData.open(final)


def _record_peak(peaks: dict[str, int], phase: str) -> None:
    """The process's peak resident memory at the end of `phase`, never below an earlier phase's
    (the kernel folds per-thread page counts into VmHWM in batches, so two readings of the same
    peak can differ by a few pages)."""
    peaks[phase] = max(peak_rss_bytes(), *peaks.values())


def _count_train_values(config, source, splits_of, layout, spill_directory, reporter, peaks):
    """Pass 1: the field plan, each sparse field's vocabulary and each dense field's [min, max]
    on the train split, rows seen and bad rows, and the seconds of the pass and of building the
    vocabularies (their peak resident memory goes into `peaks`). Value counts spill to
    `spill_directory` (one file per field) so memory stays bounded at any data size."""
    reporter.begin(f"prepare {config.name}: pass 1/2 (vocabularies)", source)
    plan: list[tuple[str, str]] | None = None
    counters: dict[str, ValueCounter] = {}
    dense_range: dict[str, list[float]] = {}
    rows_seen = bad_rows = 0
    for chunk in prefetched(source.chunks()):
        if plan is None:
            plan = _field_plan(
                config, layout, getattr(source, "column_names", None) or layout.used_columns
            )
            counters = {
                name: ValueCounter(spill_directory / f"field-{index:04d}.bin")
                for index, (name, enc) in enumerate(plan)
                if enc != "dense_minmax"
            }
            dense_range = {name: [np.inf, -np.inf] for name, enc in plan if enc == "dense_minmax"}
        bad_rows += chunk.bad_rows
        train = splits_of(chunk.rows) == TRAIN
        for name, encoding in plan:
            if encoding == "dense_minmax":
                values = dense_values(chunk, name)[train]
                if len(values):
                    dense_range[name][0] = min(dense_range[name][0], float(values.min()))
                    dense_range[name][1] = max(dense_range[name][1], float(values.max()))
                continue
            keys, missing = sparse_keys(chunk, name, encoding)
            # Positions of the train rows that hold a value: a take is about 3x faster than
            # indexing with the (random) split mask.
            counted = np.flatnonzero(train & ~missing)
            counters[name].add(keys.take(counted), chunk.rows.take(counted))
        rows_seen += len(chunk.rows) + chunk.bad_rows
        reporter.update(len(chunk.rows) + chunk.bad_rows)
    pass1_s = reporter.update(0, final=True)
    _record_peak(peaks, "pass1")
    started = time.perf_counter()
    vocabularies = {}
    for name in list(counters):
        # what the chunks (then the previous field's groups) left free in the allocators is
        # given back first: the merge's arrays are the largest of the run
        release_free_memory()
        vocabularies[name] = counters.pop(name).vocabulary(config.min_count)
    release_free_memory()
    vocabularies_s = time.perf_counter() - started
    _record_peak(peaks, "vocabularies")
    return plan, vocabularies, dense_range, rows_seen, bad_rows, (pass1_s, vocabularies_s)


def _write_shards(config, source, plan, vocabularies, feature_map, splits_of, directory, reporter):
    schema = pa.schema(shard_schema(feature_map))
    writers = {split: _ShardWriter(directory, split, schema, config.shard_rows) for split in SPLITS}
    stats = {split: {"rows": 0, "positives": 0} for split in SPLITS}
    fields = {spec.name: spec for spec in feature_map.fields}
    reporter.begin(f"prepare {config.name}: pass 2/2 (shards)", source)
    try:
        for chunk in prefetched(source.chunks()):
            codes = splits_of(chunk.rows)
            columns: dict[str, np.ndarray] = {}
            for name, encoding in plan:
                if encoding == "dense_minmax":
                    spec = fields[name]
                    values = dense_values(chunk, name)
                    columns[name] = min_max_scale(values, spec.scale_min, spec.scale_max)
                else:
                    keys, missing = sparse_keys(chunk, name, encoding)
                    columns[name] = vocabularies[name].lookup(keys, missing)
            columns[LABEL_COLUMN] = chunk.labels.astype(np.float32)
            # One stable gather puts the rows of each split together, in file order.
            order = np.argsort(codes, kind="stable")
            bounds = np.searchsorted(codes[order], np.arange(len(SPLITS) + 1))
            gathered = {name: values[order] for name, values in columns.items()}
            for code, split in enumerate(SPLITS):
                start, stop = int(bounds[code]), int(bounds[code + 1])
                if stop == start:
                    continue
                arrays = [pa.array(gathered[f.name][start:stop]) for f in schema]
                writers[split].write(pa.Table.from_arrays(arrays, schema=schema))
                labels = gathered[LABEL_COLUMN][start:stop]
                stats[split]["rows"] += stop - start
                stats[split]["positives"] += int(labels.sum())
            reporter.update(len(chunk.rows) + chunk.bad_rows)
    finally:
        for writer in writers.values():
            writer.close()
    for split in SPLITS:
        stats[split]["shards"] = writers[split].shards
    return stats, reporter.update(0, final=True)
