"""MNIST-style IDX files (MNIST, Fashion-MNIST): the official ``*-idx3-ubyte[.gz]`` /
``*-idx1-ubyte[.gz]`` pairs, read with a strict header check (LeCun's format: a big-endian
magic number 0x0801 / 0x0803, then the dimensions)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from workers.data.dataset import DataError, Dataset, make_dataset

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"{folder / (stem + '.gz')}: no such file, expected an IDX file of the MNIST format"
    )


def detect(folder: Path) -> bool:
    """True when ``folder`` holds the MNIST-format training images."""
    stem = FILES["train_images"]
    return (folder / f"{stem}.gz").is_file() or (folder / stem).is_file()


def read_idx(path: Path, magic: int) -> np.ndarray:
    """One IDX file as a uint8 array, refusing a bad magic number or a short payload."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path}: unreadable gzip data ({exc}), expected a complete .gz file"
        ) from exc
    if len(raw) < 8:
        raise DataError(f"{path}: {len(raw)} bytes, expected an IDX header of at least 8 bytes")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path}: bad magic number {found}, expected {magic}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    need = int(np.prod(shape))
    if len(raw) - header != need:
        raise DataError(
            f"{path}: {len(raw) - header} data bytes, expected {need} for shape {shape}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _pair(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = _find(folder, FILES[f"{split}_images"])
    labels_path = _find(folder, FILES[f"{split}_labels"])
    x = read_idx(images_path, IMAGES_MAGIC)
    y = read_idx(labels_path, LABELS_MAGIC)
    if len(x) != len(y):
        raise DataError(
            f"{labels_path}: {len(y)} labels, expected {len(x)} (one per image in {images_path.name})"
        )
    return x[:, None], y.astype(np.int64)


def load(folder: Path, *, name: str, val_fraction: float, seed: int) -> Dataset:
    """The four IDX files of ``folder`` as a 1-channel uint8 image data set."""
    x_train, y_train = _pair(folder, "train")
    x_test, y_test = _pair(folder, "test")
    return make_dataset(
        name,
        x_train,
        y_train,
        x_test,
        y_test,
        val_fraction=val_fraction,
        seed=seed,
        source=str(folder),
        num_classes=10,
        mirror_invariant=name != "mnist",
    )
