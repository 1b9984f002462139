"""fefm-lab: reproduce, question and extend the DeepFEFM ablation studies.

The model builders are imported lazily so that the command line (and the data path) start
without loading TensorFlow.
"""

from fefm_lab.features import DenseFeat, SparseFeat

__version__ = "0.1.0"

_MODEL_EXPORTS = (
    "DeepFEFM",
    "FEFM",
    "FmFM",
    "DeepFM",
    "DCNv2",
    "FM",
    "FwFM",
    "LR",
    "build_model",
)

# Keras optimizers for `model.compile` (row-sparse updates of the embedding tables)
_OPTIMIZER_EXPORTS = ("RowSparseAdagrad", "RowSparseAdam")

__all__ = ["DenseFeat", "SparseFeat", "__version__", *_MODEL_EXPORTS, *_OPTIMIZER_EXPORTS]


def __getattr__(name: str):
    if name in _MODEL_EXPORTS:
        from fefm_lab import model

        return getattr(model, name)
    if name in _OPTIMIZER_EXPORTS:
        from fefm_lab.training import keras_optimizers

        return getattr(keras_optimizers, name)
    raise AttributeError(f"module 'fefm_lab' has no attribute {name!r}")
