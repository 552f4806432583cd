"""An image folder: one sub-folder per class (torchvision ``ImageFolder`` layout), read with
Pillow. With ``train/`` and ``test/`` sub-folders those are the splits; otherwise a
deterministic stratified 20% test split is held out. All images must share one size unless
``resize`` is given (then every image is resized to it, bilinear)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workers.data.dataset import DataError, Dataset, make_dataset, stratified_split

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
TEST_FRACTION = 0.2
TEST_SEED = 0


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def detect(folder: Path) -> bool:
    """True when ``folder`` has at least one sub-folder (the class or split folders)."""
    return bool(_class_dirs(folder))


def _scan(folder: Path, classes: list[str] | None) -> tuple[list[Path], list[int], list[str]]:
    dirs = _class_dirs(folder)
    names = classes if classes is not None else [d.name for d in dirs]
    if not names:
        raise DataError(
            f"{folder}: no class sub-folders, expected one sub-folder of images per class"
        )
    files: list[Path] = []
    labels: list[int] = []
    for i, name in enumerate(names):
        found = sorted(p for p in (folder / name).glob("*") if p.suffix.lower() in EXTENSIONS)
        files += found
        labels += [i] * len(found)
    if not files:
        raise DataError(
            f"{folder}: no images ({', '.join(sorted(EXTENSIONS))}) in its class folders"
        )
    return files, labels, names


def _read(files: list[Path], resize: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError  # lazy: only this loader needs Pillow

    arrays: list[np.ndarray] = []
    mode = None
    for path in files:
        try:
            with Image.open(path) as img:
                if mode is None:
                    mode = "L" if img.mode in ("L", "1", "I;16", "I", "F") else "RGB"
                img = img.convert(mode)
                if resize is not None and img.size != (resize[1], resize[0]):
                    img = img.resize((resize[1], resize[0]), Image.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(
                f"{path}: unreadable image ({exc}), expected a file Pillow can open"
            ) from exc
        if arrays and arr.shape != arrays[0].shape:
            raise DataError(
                f"{path}: size {arr.shape[1]}x{arr.shape[0]}, expected "
                f"{arrays[0].shape[1]}x{arrays[0].shape[0]} like {files[0].name} (or pass resize)"
            )
        arrays.append(arr)
    x = np.stack(arrays)
    return x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)


def load(
    folder: Path, *, val_fraction: float, seed: int, resize: int | tuple[int, int] | None = None
) -> Dataset:
    size = (resize, resize) if isinstance(resize, int) else resize
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        files, labels, classes = _scan(folder / "train", None)
        test_files, test_labels, _ = _scan(folder / "test", classes)
        x_all = _read(files + test_files, size)
        x_train, x_test = x_all[: len(files)], x_all[len(files) :]
        y_train, y_test = np.array(labels), np.array(test_labels)
    else:
        files, labels, classes = _scan(folder, None)
        x = _read(files, size)
        y = np.array(labels)
        train_idx, test_idx = stratified_split(y, TEST_FRACTION, TEST_SEED)
        x_train, y_train, x_test, y_test = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    return make_dataset(
        folder.name,
        x_train,
        y_train,
        x_test,
        y_test,
        val_fraction=val_fraction,
        seed=seed,
        source=str(folder),
        num_classes=len(classes),
        classes=tuple(classes),
    )
