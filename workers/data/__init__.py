"""Data sets as whole in-memory tensors, one module per format; see :mod:`.registry`."""

from workers.data.dataset import DataError, Dataset
from workers.data.registry import clear_cache, get_dataset, list_datasets, load_dataset

__all__ = ["DataError", "Dataset", "clear_cache", "get_dataset", "list_datasets", "load_dataset"]
