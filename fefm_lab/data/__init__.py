"""The data path: raw Criteo / Avazu / generic files -> prepared datasets -> tf.data input.

`prepare(dataset_cfg, seed=..., data_root=...)` streams a raw file into a prepared directory
(or reuses one); `synthesize(...)` writes raw synthetic files with a planted teacher;
`shared.dataset_for_job` gives a job its dataset (in a sweep: the one prepared on shared storage);
`fefm_lab.data.input` turns a `PreparedData` into tf.data datasets (imported lazily: it loads
TensorFlow).
"""

from fefm_lab.data.feature_map import FeatureMap, FieldSpec
from fefm_lab.data.prepare import prepare
from fefm_lab.data.prepared import SPLITS, PreparedData
from fefm_lab.data.synthetic import synthesize

__all__ = [
    "SPLITS",
    "FeatureMap",
    "FieldSpec",
    "PreparedData",
    "prepare",
    "synthesize",
]
