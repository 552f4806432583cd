"""Read what ``nas predict`` classifies into a float32 N, C, *spatial array.

Accepted: ``.npy`` / ``.npz`` arrays (a batch or a single sample; the channel axis may be
left out when there is one channel), image files for 2D models (Pillow, converted to the
model's channels and resized to its input size), ``.csv`` (one sample per row, channels
concatenated) and sktime ``.ts`` files (``:``-separated channels) for 1D models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.core.errors import UsageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
ACCEPTED = ".npy, .npz, an image (2D models), .csv or .ts (1D models)"


def read_input(path: str | Path, shape: tuple[int, ...]) -> np.ndarray:
    """Samples in ``path`` as float32 N, *shape (``shape`` = C, *spatial of the model)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"input {str(path)!r}: no such file")
    suffix = path.suffix.lower()
    dims = len(shape) - 1
    if suffix in (".npy", ".npz"):
        x = _read_array(path)
    elif suffix in IMAGE_SUFFIXES:
        if dims != 2:
            raise UsageError(f"input {str(path)!r}: an image, but the model takes {dims}D data")
        x = _read_image(path, shape)
    elif suffix in (".csv", ".ts"):
        if dims != 1:
            raise UsageError(
                f"input {str(path)!r}: a series file, but the model takes {dims}D data"
            )
        x = _read_ts(path) if suffix == ".ts" else _read_csv(path, shape)
    else:
        raise UsageError(f"input {str(path)!r}: unknown file type {suffix!r}; expected {ACCEPTED}")
    return _as_batch(x, shape, path)


def _as_batch(x: np.ndarray, shape: tuple[int, ...], path: Path) -> np.ndarray:
    """Add the batch (and a single channel) axis where left out; check the shape."""
    if not np.issubdtype(x.dtype, np.number) and x.dtype != np.bool_:
        raise UsageError(f"input {str(path)!r}: array of {x.dtype}, expected numbers")
    c, spatial = shape[0], tuple(shape[1:])
    if x.shape == spatial and c == 1:
        x = x[None, None]
    elif x.shape == tuple(shape):
        x = x[None]
    elif x.ndim == len(spatial) + 1 and tuple(x.shape[1:]) == spatial and c == 1:
        x = x[:, None]
    if tuple(x.shape[1:]) != tuple(shape):
        want = ",".join(map(str, shape))
        raise UsageError(f"input {str(path)!r}: shape {list(x.shape)}, expected N,{want} or {want}")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise UsageError(f"input {str(path)!r}: contains NaN or infinite values")
    return x


def _read_array(path: Path) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise UsageError(
            f"input {str(path)!r}: not a readable NumPy file ({type(exc).__name__})"
        ) from exc
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            keys = list(data.keys())
            if not keys:
                raise UsageError(f"input {str(path)!r}: empty .npz archive")
            key = next((k for k in ("x", "X", "inputs", "data") if k in keys), keys[0])
            return data[key]
    return data


def _read_image(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    c, h, w = shape
    if c not in (1, 3):
        raise UsageError(
            f"input {str(path)!r}: images need a 1- or 3-channel model, this one has {c}"
        )
    try:
        with Image.open(path) as im:
            im = im.convert("L" if c == 1 else "RGB")
            if im.size != (w, h):
                im = im.resize((w, h), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.float32)
    except (UnidentifiedImageError, OSError) as exc:
        raise UsageError(
            f"input {str(path)!r}: not a readable image ({type(exc).__name__})"
        ) from exc
    return arr[None] if c == 1 else arr.transpose(2, 0, 1)


def _read_csv(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """One sample per row: C * L numbers, channel after channel; a header row is skipped."""
    for skip in (0, 1):
        try:
            rows = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2, skiprows=skip)
            break
        except ValueError:
            continue
    else:
        raise UsageError(f"input {str(path)!r}: not a numeric CSV (one sample per row)")
    c, length = shape
    if rows.shape[1] != c * length:
        raise UsageError(
            f"input {str(path)!r}: rows of {rows.shape[1]} values, expected {c * length} (channels x length)"
        )
    return rows.reshape(len(rows), c, length)


def _read_ts(path: Path) -> np.ndarray:
    """sktime ``.ts``: ``@`` header lines, then ``ch1values:ch2values[:label]`` per sample."""
    has_label = False
    samples: list[list[list[float]]] = []
    in_data = False
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                low = line.lower()
                if low.startswith("@classlabel"):
                    has_label = low.split()[1:2] == ["true"]
                elif low.startswith("@data"):
                    in_data = True
                elif not low.startswith("@") and in_data:
                    parts = line.split(":")
                    if has_label:
                        parts = parts[:-1]
                    samples.append([[float(v) for v in p.split(",")] for p in parts])
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError(
            f"input {str(path)!r}: not a readable .ts file ({type(exc).__name__})"
        ) from exc
    if not samples:
        raise UsageError(f"input {str(path)!r}: no samples after @data")
    try:
        return np.asarray(samples, dtype=np.float64)
    except ValueError as exc:
        raise UsageError(
            f"input {str(path)!r}: samples of unequal length or channel count"
        ) from exc
