"""Neural-architecture search over a catalog of classic CNN blocks: Optuna samples, Ray
evaluates, MLflow tracks.

The Python API (:mod:`nas.api`) is imported on first use, so ``import nas`` and the CLI
stay quick::

    import nas
    result = nas.search(dataset="digits", budget="3m")
    result.retrain(epochs=30)
"""

from __future__ import annotations

from typing import Any

from nas.core.driver_env import set_driver_env
from nas.core.errors import UsageError

set_driver_env()

__all__ = ["SearchResult", "SearchStopped", "UsageError", "__version__", "load", "search"]

_API = ("SearchResult", "SearchStopped", "load", "search")


def __getattr__(name: str) -> Any:
    if name in _API:
        from nas import api

        return getattr(api, name)
    if name == "__version__":
        from nas.cli import version

        return version()
    raise AttributeError(f"module 'nas' has no attribute {name!r}")
