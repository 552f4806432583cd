"""scikit-learn's bundled ``load_digits`` (UCI optical digits): 1,797 8x8 images, values
0..16, scaled to uint8 0..255. No download, so it is the data set of quick tests. The test
split (20%, stratified) uses a fixed seed so it never depends on the run's seed."""

from __future__ import annotations

import numpy as np

from workers.data.dataset import Dataset, make_dataset, stratified_split

TEST_FRACTION = 0.2
TEST_SEED = 0


def load(*, val_fraction: float, seed: int) -> Dataset:
    from sklearn.datasets import load_digits  # lazy: only this loader needs scikit-learn

    bunch = load_digits()
    x = np.round(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    y = bunch.target.astype(np.int64)
    train_idx, test_idx = stratified_split(y, TEST_FRACTION, TEST_SEED)
    return make_dataset(
        "digits",
        x[train_idx],
        y[train_idx],
        x[test_idx],
        y[test_idx],
        val_fraction=val_fraction,
        seed=seed,
        source="sklearn load_digits",
        num_classes=10,
        mirror_invariant=False,
    )
