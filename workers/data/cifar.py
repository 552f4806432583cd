"""CIFAR-10 / CIFAR-100 in the official "python version" layout (Krizhevsky, 2009):
pickled dicts with ``data`` (N x 3072 uint8, channel-major) and ``labels`` /
``fine_labels``; CIFAR-10 has ``data_batch_1..5`` + ``test_batch``, CIFAR-100 ``train`` +
``test``. These are pickles, read by :func:`workers.data.plain_pickle.load_plain`, which
admits the plain types the format uses and refuses any other (a file that would run code
when unpickled is refused with one line naming it)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from workers.data.dataset import DataError, Dataset, make_dataset, require_file
from workers.data.plain_pickle import UnsafePickleError, load_plain

SUBFOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def detect(folder: Path) -> str | None:
    """``"cifar10"``, ``"cifar100"`` or None for what ``folder`` holds."""
    if (folder / "data_batch_1").is_file():
        return "cifar10"
    if (folder / "train").is_file() and (folder / "test").is_file():
        return "cifar100"
    return None


def resolve(folder: Path, variant: str) -> Path:
    """``folder`` or its official sub-folder, whichever holds the batches."""
    sub = folder / SUBFOLDERS[variant]
    return sub if detect(sub) == variant else folder


def _read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    require_file(path, "a CIFAR python pickle batch")
    try:
        with open(path, "rb") as fh:
            batch = load_plain(fh, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (
        pickle.UnpicklingError,
        EOFError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
    ) as exc:
        if isinstance(exc, UnsafePickleError):
            raise DataError(f"{path}: refused, not a plain CIFAR batch: {exc}") from None
        raise DataError(
            f"{path}: not a CIFAR batch ({type(exc).__name__}: {exc}), expected a pickled dict "
            f"with b'data' and {label_key!r}"
        ) from exc
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: data of shape {data.shape}, expected N x 3072")
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(labels)} labels, expected {len(data)} (one per image)")
    return data.reshape(-1, 3, 32, 32), labels


def load(folder: Path, *, variant: str, val_fraction: float, seed: int) -> Dataset:
    """CIFAR-10 (``variant="cifar10"``) or CIFAR-100 from ``folder``."""
    folder = resolve(folder, variant)
    if variant == "cifar10":
        parts = [_read_batch(folder / f"data_batch_{i}", b"labels") for i in range(1, 6)]
        x_train = np.concatenate([p[0] for p in parts])
        y_train = np.concatenate([p[1] for p in parts])
        x_test, y_test = _read_batch(folder / "test_batch", b"labels")
        k = 10
    else:
        x_train, y_train = _read_batch(folder / "train", b"fine_labels")
        x_test, y_test = _read_batch(folder / "test", b"fine_labels")
        k = 100
    return make_dataset(
        variant,
        x_train,
        y_train,
        x_test,
        y_test,
        val_fraction=val_fraction,
        seed=seed,
        source=str(folder),
        num_classes=k,
    )
