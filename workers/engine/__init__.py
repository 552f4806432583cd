"""The training engine: :func:`train` one architecture on an in-memory :class:`Dataset`."""

from workers.engine.folds import fold_datasets, stratified_folds, train_folds
from workers.engine.loop import STATE_FORMAT, evaluate, train
from workers.engine.oom import retry_smaller_on_oom
from workers.engine.results import EpochMetrics, TrainResult

__all__ = [
    "STATE_FORMAT",
    "EpochMetrics",
    "TrainResult",
    "evaluate",
    "fold_datasets",
    "retry_smaller_on_oom",
    "stratified_folds",
    "train",
    "train_folds",
]
