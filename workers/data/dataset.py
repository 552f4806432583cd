"""The in-memory :class:`Dataset`, :class:`DataError` and the split / statistics helpers
that every format loader shares, so that each loader only has to parse its files."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch


class DataError(ValueError):
    """Missing, corrupt or unexpected data. The message names the file and what was expected,
    e.g. ``…/train-images-idx3-ubyte.gz: bad magic number 2050, expected 2051``."""


@dataclass(frozen=True)
class Dataset:
    """A classification data set held as whole tensors (no DataLoader, no per-sample Python).

    ``x`` tensors are ``N, C, *spatial``: uint8 for images (and uint8 volumes), float32 for
    series and float volumes; ``y`` tensors are int64 class indices. ``mean`` / ``std`` are per
    channel, computed on the training split, in the units of ``x`` (0..255 for uint8), so the
    engine can normalise on the device in one fused op per batch.
    """

    name: str
    num_classes: int
    dims: int
    channels: int
    size: tuple[int, ...]
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    classes: tuple[str, ...] = ()
    # False where a mirror image is another thing (handwritten digits): no horizontal flips
    mirror_invariant: bool = True

    @property
    def modality(self) -> str:
        """``"series"`` (1-D), ``"image"`` (2-D) or ``"volume"`` (3-D): what augmentation means."""
        return {1: "series", 2: "image", 3: "volume"}[self.dims]

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def to(self, device: str | torch.device) -> Dataset:
        """A copy with every tensor on ``device`` (self when already there)."""
        device = torch.device(device)
        if self.train_x.device == device:
            return self
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved)


def _owned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous, writable array (torch refuses to share read-only buffers)."""
    return np.require(a, requirements=["C", "W"])


def _check_xy(x: np.ndarray, y: np.ndarray, source: str) -> None:
    if len(x) != len(y):
        raise DataError(f"{source}: {len(x)} inputs but {len(y)} labels, expected equal counts")
    if len(x) == 0:
        raise DataError(f"{source}: no samples, expected at least one")
    if x.ndim not in (3, 4, 5):
        raise DataError(
            f"{source}: inputs of shape {x.shape}, expected N,C,L / N,C,H,W / N,C,D,H,W"
        )


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: (keep_idx, held_idx), ``fraction`` of each class held
    out (rounded, at least one per class that has two or more samples when fraction > 0)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"split fraction {fraction}: expected 0 <= fraction < 1")
    rng = np.random.RandomState(seed)
    held: list[np.ndarray] = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        k = int(round(fraction * len(idx)))
        if fraction > 0 and k == 0 and len(idx) >= 2:
            k = 1
        held.append(idx[:k])
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[held_idx] = False
    return np.flatnonzero(mask), held_idx


def class_indices(
    labels: list[str] | np.ndarray, source: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map labels (ints or strings) to 0..K-1 in sorted order (numerically when all numeric)."""
    labels = [str(v) for v in np.asarray(labels).tolist()]
    uniq = set(labels)
    try:
        classes = sorted(uniq, key=float)
    except ValueError:
        classes = sorted(uniq)
    if not classes:
        raise DataError(f"{source}: no labels, expected at least one")
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in labels], dtype=np.int64), tuple(classes)


def make_dataset(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    val_fraction: float,
    seed: int,
    source: str,
    num_classes: int | None = None,
    classes: tuple[str, ...] = (),
    mirror_invariant: bool = True,
) -> Dataset:
    """Validate arrays, hold out a stratified validation split and compute the statistics.

    ``x`` arrays are N,C,*spatial; uint8 stays uint8 (images), anything else becomes float32.
    """
    _check_xy(x_train, y_train, f"{source} (train)")
    _check_xy(x_test, y_test, f"{source} (test)")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{source}: train inputs {x_train.shape[1:]} but test inputs {x_test.shape[1:]}, "
            "expected the same shape"
        )
    y_train = np.asarray(y_train, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    k = int(num_classes if num_classes is not None else max(y_train.max(), y_test.max()) + 1)
    for split, y in (("train", y_train), ("test", y_test)):
        if y.min() < 0 or y.max() >= k:
            raise DataError(
                f"{source} ({split}): label {int(y.max())} out of range, expected 0..{k - 1}"
            )
    if x_train.dtype != np.uint8:
        x_train = x_train.astype(np.float32)
        x_test = x_test.astype(np.float32)
        if not (np.isfinite(x_train).all() and np.isfinite(x_test).all()):
            raise DataError(f"{source}: NaN or Inf in the inputs, expected finite values")
    keep, held = stratified_split(y_train, val_fraction, seed)
    xt = torch.from_numpy(_owned(x_train[keep]))
    reduce = [0] + list(range(2, xt.ndim))
    xf = xt.float()
    mean = xf.mean(dim=reduce)
    std = xf.std(dim=reduce).clamp_min(1e-6)
    return Dataset(
        name=name,
        num_classes=k,
        dims=x_train.ndim - 2,
        channels=int(x_train.shape[1]),
        size=tuple(int(s) for s in x_train.shape[2:]),
        train_x=xt,
        train_y=torch.from_numpy(y_train[keep]),
        val_x=torch.from_numpy(_owned(x_train[held])),
        val_y=torch.from_numpy(y_train[held]),
        test_x=torch.from_numpy(_owned(x_test)),
        test_y=torch.from_numpy(y_test),
        mean=mean,
        std=std,
        classes=classes,
        mirror_invariant=mirror_invariant,
    )


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a DataError naming it and what it should hold."""
    if not path.is_file():
        raise DataError(f"{path}: no such file, expected {what}")
    return path
