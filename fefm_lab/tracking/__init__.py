"""MLflow, and only MLflow: the store, a run's identity (config hash), names, tags, logging,
resume, liveness, the experiment's description, the UI and the tracking server."""

from fefm_lab.tracking.confighash import HASHED_KEYS, config_hash, flatten
from fefm_lab.tracking.store import (
    TrackingStore,
    open_store,
)

__all__ = ["HASHED_KEYS", "TrackingStore", "config_hash", "flatten", "open_store"]
