"""MLflow tracking: one run per job, one parent run per sweep, resume by config hash."""

from fefm_lab.tracking.confighash import HASHED_KEYS, config_hash, flatten
from fefm_lab.tracking.store import (
    TrackingStore,
    open_store,
)

__all__ = ["HASHED_KEYS", "TrackingStore", "config_hash", "flatten", "open_store"]
