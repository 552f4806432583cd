"""The environment a nas driver sets for Ray and MLflow, before either is imported.

Called by ``import nas`` (every nas module is imported after it), so the modules that import
Ray and MLflow at their top need no code before their imports. Each variable is set only
where the user has not set it.
"""

from __future__ import annotations

import os

DRIVER_ENV = {
    # Quiet Ray's own console output: the live view is ours.
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_CHDIR_TO_TRIAL_DIR": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_DEDUP_LOGS": "0",
    # A tracking server that is away must not hold the search for minutes: few, short
    # retries, then the event waits in the spool (nas.tracking.spool).
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def set_driver_env() -> None:
    """Set :data:`DRIVER_ENV` where the environment does not say otherwise."""
    for key, value in DRIVER_ENV.items():
        os.environ.setdefault(key, value)
