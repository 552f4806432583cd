"""Choosing a loader (by name, or by what a path holds) and the per-process cache."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import torch

from workers.data import cifar, digits, folder, idx, npz, ts
from workers.data.dataset import DataError, Dataset
from workers.trial import VAL_FRACTION

# name -> (loader(path_or_None, val_fraction, seed, **opts), needs a data folder)
_NAMED: dict[str, tuple[Callable[..., Dataset], bool]] = {
    "digits": (lambda p, **kw: digits.load(**kw), False),
    "mnist": (lambda p, **kw: idx.load(p, name="mnist", **kw), True),
    "fashion-mnist": (lambda p, **kw: idx.load(p, name="fashion-mnist", **kw), True),
    "cifar10": (lambda p, **kw: cifar.load(p, variant="cifar10", **kw), True),
    "cifar100": (lambda p, **kw: cifar.load(p, variant="cifar100", **kw), True),
}
_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
}
DATA_DIR_ENV = "NAS_DATA_DIR"

_cache: dict[tuple, Dataset] = {}
_lock = threading.Lock()


def list_datasets() -> list[str]:
    """Names accepted without a path (any folder or ``.npz`` path is accepted as well)."""
    return sorted(_NAMED)


def _load_path(path: Path, *, val_fraction: float, seed: int, resize=None) -> Dataset:
    """Pick the loader by what ``path`` holds."""
    if path.is_file():
        if path.suffix == ".npz":
            return npz.load(path, val_fraction=val_fraction, seed=seed)
        raise DataError(f"{path}: unsupported file, expected a .npz archive or a data folder")
    if not path.is_dir():
        raise DataError(
            f"{path}: no such file or folder, expected a data set path or one of {list_datasets()}"
        )
    if ts.find_pair(path) is not None:
        return ts.load(path, val_fraction=val_fraction, seed=seed)
    if idx.detect(path):
        return idx.load(path, name=path.name, val_fraction=val_fraction, seed=seed)
    for variant in ("cifar10", "cifar100"):
        if (
            cifar.detect(path) == variant
            or cifar.detect(path / cifar.SUBFOLDERS[variant]) == variant
        ):
            return cifar.load(path, variant=variant, val_fraction=val_fraction, seed=seed)
    if folder.detect(path):
        return folder.load(path, val_fraction=val_fraction, seed=seed, resize=resize)
    raise DataError(
        f"{path}: empty or unrecognised folder, expected NAME_TRAIN.ts/NAME_TEST.ts, MNIST IDX "
        "files, CIFAR batches or one sub-folder of images per class"
    )


def _named_folder(name: str, data_dir: str | os.PathLike | None) -> Path:
    base = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if base is None:
        raise DataError(
            f"{name}: no data folder given, expected --data-dir (or ${DATA_DIR_ENV}) holding its files"
        )
    base = Path(base)
    if not base.is_dir():
        raise DataError(f"{base}: no such folder, expected the data folder of {name}")
    sub = base / name
    return sub if sub.is_dir() else base


def load_dataset(
    name_or_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    *,
    val_fraction: float = VAL_FRACTION,
    seed: int = 0,
    resize: int | tuple[int, int] | None = None,
) -> Dataset:
    """Load a data set (on the CPU) by name (see :func:`list_datasets`, files from
    ``data_dir`` or ``data_dir/<name>``) or by path (a ``.npz``, a ``.ts`` folder, an IDX
    folder, CIFAR batches or an image folder; relative paths may sit under ``data_dir``).
    ``resize`` applies to image folders. Raises :class:`DataError` before any training."""
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction {val_fraction}: expected 0 <= val_fraction < 1")
    kw = {"val_fraction": val_fraction, "seed": seed}
    key = str(name_or_path)
    canonical = _ALIASES.get(key.lower(), key.lower())
    if canonical in _NAMED and not Path(key).exists():
        loader, needs_dir = _NAMED[canonical]
        return loader(_named_folder(canonical, data_dir) if needs_dir else None, **kw)
    path = Path(key).expanduser()
    if not path.exists() and data_dir is not None and (Path(data_dir) / key).exists():
        path = Path(data_dir) / key
    if not path.exists() and not any(sep in key for sep in ("/", os.sep)) and path.suffix != ".npz":
        raise DataError(
            f"{key}: unknown data set and no such path, expected one of {list_datasets()} or a path"
        )
    return _load_path(path, resize=resize, **kw)


def get_dataset(
    name_or_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    *,
    val_fraction: float = VAL_FRACTION,
    seed: int = 0,
    device: str | torch.device = "cpu",
    resize: int | tuple[int, int] | None = None,
) -> Dataset:
    """:func:`load_dataset`, cached once per process and device, tensors on ``device``."""
    dev = torch.device(device)
    key = (str(name_or_path), str(data_dir), val_fraction, seed, str(dev), resize)
    with _lock:
        if key not in _cache:
            cpu_key = key[:4] + ("cpu", resize)
            if cpu_key not in _cache:
                _cache[cpu_key] = load_dataset(
                    name_or_path, data_dir, val_fraction=val_fraction, seed=seed, resize=resize
                )
            _cache[key] = _cache[cpu_key].to(dev)
        return _cache[key]


def clear_cache() -> None:
    """Forget every cached data set (tests; freeing device memory)."""
    with _lock:
        _cache.clear()
