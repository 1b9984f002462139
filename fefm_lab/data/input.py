"""tf.data input from a prepared dataset, without per-row Python or per-row tf.data ops.

Batches are cut from whole arrays: a split that fits `memory_budget_bytes` is loaded once and kept
(on the PreparedData object); each epoch permutes it and gathers `superbatch` batches at a time.
A larger split streams its memory-mapped shards: shard order shuffled, then a permutation within
each shard, leftover rows carried into the next shard. A generator yields (k, batch, ...) blocks
that `unbatch` splits into k batches in C++.

Each element is `(features, labels)`: `features[name]` (B, 1) int32 for a sparse field, (B, d)
float32 for a dense one, labels (B, 1) float32. The last batch of an epoch may be smaller.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from fefm_lab.data.feature_map import DENSE
from fefm_lab.data.prepared import PreparedData, check_split
from fefm_lab.data.reader import prefetched

DEFAULT_MEMORY_BUDGET_BYTES = 2 << 30
DEFAULT_SUPERBATCH = 32

Arrays = tuple[dict[str, np.ndarray], np.ndarray]


def _signature(data: PreparedData) -> tuple:
    features = {}
    for spec in data.feature_map.fields:
        if spec.kind == DENSE:
            features[spec.name] = tf.TensorSpec((None, None, spec.dimension), tf.float32)
        else:
            features[spec.name] = tf.TensorSpec((None, None, 1), tf.int32)
    return features, tf.TensorSpec((None, None, 1), tf.float32)


def _resident(data: PreparedData, split: str, budget: int) -> Arrays | None:
    """The whole split in memory when it fits the budget (loaded once per PreparedData)."""
    key = ("resident", split)
    if key not in data._cache:
        if data.rows(split) * data.row_bytes() > budget:
            return None
        features, labels = data.load_split(split)
        data._cache[key] = (features, labels.reshape(-1, 1))
    return data._cache[key]


def _blocks(arrays: Arrays, order: np.ndarray | None, batch_size: int, superbatch: int):
    """Yield (k, B, ...) blocks of whole batches in `order` (None: file order), then the rest."""
    features, labels = arrays
    n = len(labels)
    step = batch_size * superbatch
    for start in range(0, n, step):
        stop = min(start + step, n)
        full = (stop - start) // batch_size * batch_size
        pieces = [(start, start + full)] if full else []
        if start + full < stop:
            pieces.append((start + full, stop))
        for a, b in pieces:
            index = slice(a, b) if order is None else order[a:b]
            rows = b - a
            k = rows // batch_size if rows >= batch_size else 1
            per = rows // k
            yield (
                {
                    name: values[index].reshape(k, per, values.shape[1])
                    for name, values in features.items()
                },
                labels[index].reshape(k, per, 1),
            )


def _from_blocks(data: PreparedData, blocks) -> tf.data.Dataset:
    dataset = tf.data.Dataset.from_generator(blocks, output_signature=_signature(data))
    return dataset.unbatch().prefetch(tf.data.AUTOTUNE)


def _shard_stream(
    data: PreparedData, split: str, rng: np.random.Generator | None
) -> Iterator[Arrays]:
    """Shards in (shuffled) order, rows permuted within each when `rng` is given."""
    paths = data.shard_paths(split)
    if rng is not None:
        paths = [paths[i] for i in rng.permutation(len(paths))]
    for path in paths:
        features, labels = data.read_shard(path)
        labels = labels.reshape(-1, 1)
        if rng is not None:
            order = rng.permutation(len(labels))
            for name in list(features):  # column by column: one unpermuted column at a time
                features[name] = features[name][order]
            labels = labels[order]
        yield features, labels


def _streamed_blocks(stream: Iterator[Arrays], batch_size: int, superbatch: int):
    """Whole batches across shard boundaries: leftover rows lead the next shard's first batch
    (one batch is concatenated, never the whole shard)."""
    carry: Arrays | None = None
    for features, labels in prefetched(stream):
        start = 0
        if carry is not None and len(carry[1]):
            start = min(batch_size - len(carry[1]), len(labels))
            features_head = {n: v[:start] for n, v in features.items()}
            joined = (
                {n: np.concatenate([carry[0][n], v]) for n, v in features_head.items()},
                np.concatenate([carry[1], labels[:start]]),
            )
            if len(joined[1]) < batch_size:  # a shard smaller than the rest of a batch
                carry = joined
                continue
            yield from _blocks(joined, None, batch_size, superbatch)
        full = start + (len(labels) - start) // batch_size * batch_size
        if full > start:
            body = ({n: v[start:full] for n, v in features.items()}, labels[start:full])
            yield from _blocks(body, None, batch_size, superbatch)
        carry = ({n: v[full:] for n, v in features.items()}, labels[full:])
    if carry is not None and len(carry[1]):
        yield from _blocks(carry, None, batch_size, superbatch)


def train_dataset(
    data: PreparedData,
    batch_size: int,
    seed: int,
    *,
    epoch: int = 0,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
    superbatch: int = DEFAULT_SUPERBATCH,
) -> tf.data.Dataset:
    """The train split, one epoch per iteration, in an order that depends only on (seed, epoch).

    The returned dataset's first iteration is epoch `epoch`, its next one `epoch + 1`, ...: so
    iterating one dataset once per epoch (as `model.fit` does) reshuffles every epoch, and a
    new call starts from `epoch` again, whatever ran before: a seed reproduces a run.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, received {batch_size!r}")

    epochs = itertools.count(epoch)

    def blocks():
        rng = np.random.default_rng([seed, next(epochs)])
        arrays = _resident(data, "train", memory_budget_bytes)
        if arrays is not None:
            order = rng.permutation(len(arrays[1]))
            yield from _blocks(arrays, order, batch_size, superbatch)
        else:
            stream = _shard_stream(data, "train", rng)
            yield from _streamed_blocks(stream, batch_size, superbatch)

    return _from_blocks(data, blocks)


def eval_dataset(
    data: PreparedData,
    split: str,
    batch_size: int,
    *,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
    superbatch: int = DEFAULT_SUPERBATCH,
) -> tf.data.Dataset:
    """`split` in file order, every row exactly once, so metrics over it are exact."""
    check_split(split)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, received {batch_size!r}")

    def blocks():
        arrays = _resident(data, split, memory_budget_bytes)
        if arrays is not None:
            yield from _blocks(arrays, None, batch_size, superbatch)
        else:
            yield from _streamed_blocks(_shard_stream(data, split, None), batch_size, superbatch)

    return _from_blocks(data, blocks)
