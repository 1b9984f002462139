"""A training step touches only the embedding rows of its batch."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from fefm_lab import SparseFeat, build_model
from fefm_lab.training import Trainer, TrainerConfig


def _ops_reading(graph, variable) -> set[str]:
    """Types of the ops in `graph` that take `variable`'s handle as an input."""
    handle = variable.value.handle
    inner = {internal.name for external, internal in graph.captures if external is handle}
    assert inner, f"{variable.path} is not captured by the graph"
    return {op.type for op in graph.get_operations() for t in op.inputs if t.name in inner}


def test_embedding_tables_are_gathered_row_wise_never_read_whole() -> None:
    columns = [SparseFeat(f"c{i}", 50, 4) for i in range(3)]
    model = build_model("deepfefm", columns, columns, dnn_hidden_units=(8,))
    trainer = Trainer(model, TrainerConfig(verbose=False))
    features = {c.name: tf.constant(np.array([[1], [7]], np.int32)) for c in columns}
    labels = tf.constant([[1.0], [0.0]])
    graph = trainer._gradients.get_concrete_function(features, labels).graph
    tables = [v for v in model.trainable_variables if v.path.endswith("table")]
    assert len(tables) == 2  # the k-d feature table and the 1-d linear table
    for table in tables:
        assert _ops_reading(graph, table) == {"ResourceGather"}, table.path
    _, gradients = trainer._gradients(features, labels)
    by_path = dict(zip([v.path for v in trainer.variables], gradients, strict=True))
    for table in tables:
        assert isinstance(by_path[table.path], tf.IndexedSlices), table.path


def test_a_step_changes_only_the_rows_of_the_batch() -> None:
    columns = [SparseFeat(f"c{i}", 20, 4) for i in range(2)]
    model = build_model("fefm", columns, columns, l2_reg_embedding_feat=1e-3)
    trainer = Trainer(model, TrainerConfig(verbose=False))
    table = next(v for v in model.trainable_variables if v.path.endswith("embedding/table"))
    before = np.array(table.numpy())
    features = {"c0": tf.constant([[3]], tf.int32), "c1": tf.constant([[5]], tf.int32)}
    trainer.train_step(features, tf.constant([[1.0]]))
    changed = np.flatnonzero(np.any(table.numpy() != before, axis=1))
    np.testing.assert_array_equal(changed, [3, 20 + 5])  # shared table: column offsets 0 and 20
