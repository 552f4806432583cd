"""UCR / UEA time-series archives in the sktime ``.ts`` text format: ``@`` header lines,
``@data``, then one case per line, channels separated by ``:`` and the class label last.
A folder holds ``NAME_TRAIN.ts`` and ``NAME_TEST.ts``. Labels may be strings; they become
class indices in sorted order. Variable-length series are right-padded with zeros to the
longest series of the archive (train and test together); missing values (``?``) are an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workers.data.dataset import DataError, Dataset, class_indices, make_dataset


def find_pair(folder: Path) -> tuple[Path, Path] | None:
    """(train, test) ``.ts`` files of ``folder``, or None when it holds none."""
    trains = sorted(folder.glob("*_TRAIN.ts"))
    if not trains:
        return None
    train = trains[0]
    test = train.with_name(train.name[: -len("_TRAIN.ts")] + "_TEST.ts")
    if not test.is_file():
        raise DataError(f"{test}: no such file, expected the test half of {train.name}")
    return train, test


def read_ts(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """Cases (each C x L float32) and their raw labels from one ``.ts`` file."""
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc}), expected a UTF-8 .ts text file") from exc
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower().startswith("@data")
            continue
        *channels, label = line.split(":")
        if not channels:
            raise DataError(f"{path}:{lineno}: no ':' before the label, expected values:label")
        try:
            rows = [
                np.array([float(v) for v in ch.split(",")], dtype=np.float32) for ch in channels
            ]
        except ValueError as exc:
            raise DataError(
                f"{path}:{lineno}: {exc}, expected comma-separated numbers (no '?')"
            ) from exc
        if len({len(r) for r in rows}) != 1:
            raise DataError(
                f"{path}:{lineno}: channels of different lengths, expected equal lengths per case"
            )
        if series and len(rows) != series[0].shape[0]:
            raise DataError(f"{path}:{lineno}: {len(rows)} channels, expected {series[0].shape[0]}")
        series.append(np.stack(rows))
        labels.append(label.strip())
    if not in_data:
        raise DataError(f"{path}: no @data line, expected the sktime .ts format")
    if not series:
        raise DataError(f"{path}: no cases after @data, expected at least one")
    return series, labels


def _pad(series: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(series), series[0].shape[0], length), dtype=np.float32)
    for i, s in enumerate(series):
        out[i, :, : s.shape[1]] = s
    return out


def load(folder: Path, *, val_fraction: float, seed: int) -> Dataset:
    pair = find_pair(folder)
    if pair is None:
        raise DataError(f"{folder}: no NAME_TRAIN.ts, expected NAME_TRAIN.ts and NAME_TEST.ts")
    (train_s, train_l), (test_s, test_l) = read_ts(pair[0]), read_ts(pair[1])
    if train_s[0].shape[0] != test_s[0].shape[0]:
        raise DataError(
            f"{pair[1]}: {test_s[0].shape[0]} channels, expected {train_s[0].shape[0]} like {pair[0].name}"
        )
    unknown = sorted(set(test_l) - set(train_l))
    if unknown:
        raise DataError(
            f"{pair[1]}: labels {unknown[:5]} absent from {pair[0].name}, expected the same classes"
        )
    y, classes = class_indices(train_l + test_l, str(folder))
    length = max(s.shape[1] for s in train_s + test_s)
    return make_dataset(
        pair[0].name[: -len("_TRAIN.ts")],
        _pad(train_s, length),
        y[: len(train_l)],
        _pad(test_s, length),
        y[len(train_l) :],
        val_fraction=val_fraction,
        seed=seed,
        source=str(folder),
        num_classes=len(classes),
        classes=classes,
    )
