"""Who evaluates: data sets, augmentation, the training engine, checkpoints and latency.

Imports torch, numpy, the standard library and ``search_spaces`` (its training defaults and
its input scaling: ``workers.settings``, ``augment``, ``calibrate``, ``trainable``; the
network builder lazily when given a spec); scikit-learn / Pillow lazily inside their
loaders, Ray only in ``workers.trainable``.
"""

from workers.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from workers.data import DataError, Dataset, get_dataset, list_datasets, load_dataset
from workers.engine import EpochMetrics, TrainResult, train
from workers.latency import measure_latency
from workers.settings import TrainSettings
from workers.status import TrialStatus

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
