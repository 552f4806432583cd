"""NumPy ``.npz`` archives with ``x_train, y_train, x_test, y_test``. The modality follows
``x``'s rank: N,L (series, one channel) or N,C,L; N,H,W (one channel) or N,C,H,W images;
N,C,D,H,W volumes. uint8 inputs stay uint8; anything else becomes float32."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from workers.data.dataset import DataError, Dataset, class_indices, make_dataset

KEYS = ("x_train", "y_train", "x_test", "y_test")


def _channels_first(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    # N,L -> series; N,H,W -> images; higher ranks are already channel-first.
    if x.ndim == 2 or (x.ndim == 3 and x.dtype == np.uint8):
        return x[:, None]
    if x.ndim == 3 and x.dtype != np.uint8:
        return x  # N,C,L float series
    if x.ndim in (4, 5):
        return x
    raise DataError(
        f"{path}: {key} of shape {x.shape}, expected N,L / N,C,L / N,H,W / N,C,H,W / N,C,D,H,W"
    )


def load(path: Path, *, val_fraction: float, seed: int) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in KEYS if k not in archive.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}, expected keys {list(KEYS)}")
            arrays = {k: archive[k] for k in KEYS}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: unreadable .npz ({exc}), expected a NumPy .npz archive") from exc
    y_all, classes = class_indices(
        np.concatenate([arrays["y_train"].ravel(), arrays["y_test"].ravel()]), str(path)
    )
    n = arrays["y_train"].size
    return make_dataset(
        path.stem,
        _channels_first(arrays["x_train"], path, "x_train"),
        y_all[:n],
        _channels_first(arrays["x_test"], path, "x_test"),
        y_all[n:],
        val_fraction=val_fraction,
        seed=seed,
        source=str(path),
        num_classes=len(classes),
        classes=classes,
    )
