"""The training engine: :func:`train` one architecture on an in-memory :class:`Dataset`."""

from workers.engine.loop import STATE_FORMAT, evaluate, train
from workers.engine.results import EpochMetrics, TrainResult

__all__ = ["STATE_FORMAT", "EpochMetrics", "TrainResult", "evaluate", "train"]
