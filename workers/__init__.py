"""Who evaluates: data sets, augmentation, the training engine, checkpoints and latency.

Its submodules import torch, numpy, the standard library and ``search_spaces`` (its training defaults and
its input scaling: ``workers.settings``, ``augment``, ``calibrate``, ``trainable``; the
network builder lazily when given a spec); scikit-learn / Pillow lazily inside their
loaders, Ray only in ``workers.trainable``.
"""

from __future__ import annotations

import importlib
from typing import Any

#: The public API, imported on first use so that ``import workers.trial`` (the trial
#: contract, which the driver's configuration reads) does not load torch.
_WHERE = {
    "CheckpointError": "workers.checkpoint",
    "load_checkpoint": "workers.checkpoint",
    "save_checkpoint": "workers.checkpoint",
    "DataError": "workers.data",
    "Dataset": "workers.data",
    "get_dataset": "workers.data",
    "list_datasets": "workers.data",
    "load_dataset": "workers.data",
    "EpochMetrics": "workers.engine",
    "TrainResult": "workers.engine",
    "train": "workers.engine",
    "measure_latency": "workers.latency",
    "TrainSettings": "workers.settings",
    "TrialStatus": "workers.status",
}

__all__ = [
    "CheckpointError",
    "DataError",
    "Dataset",
    "EpochMetrics",
    "TrainResult",
    "TrainSettings",
    "TrialStatus",
    "get_dataset",
    "list_datasets",
    "load_checkpoint",
    "load_dataset",
    "measure_latency",
    "save_checkpoint",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    try:  # a submodule, as ``workers.engine.loop`` after ``import workers``
        return importlib.import_module(f"workers.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module 'workers' has no attribute {name!r}") from None
