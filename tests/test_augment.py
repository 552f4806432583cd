"""Batch augmentation: shapes, dtype, determinism under a seeded generator, identity at 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workers.augment import Augmenter, cutout, random_crop
from workers.data.dataset import make_dataset


def dataset(shape, dtype=np.uint8, n=16):
    rng = np.random.RandomState(0)
    x = rng.randint(0, 256, (n, *shape)).astype(dtype)
    y = np.arange(n) % 2
    return make_dataset("toy", x, y, x, y, val_fraction=0.0, seed=0, source="toy")


@pytest.mark.parametrize("shape", [(3, 12, 10), (1, 8, 8), (2, 30), (1, 4, 5, 6)])
def test_shapes_and_determinism(shape):
    ds = dataset(shape, np.uint8 if len(shape) == 3 else np.float32)
    aug = Augmenter.for_dataset(ds, 1.0)
    a = aug.train(ds.train_x, torch.Generator().manual_seed(1))
    b = aug.train(ds.train_x, torch.Generator().manual_seed(1))
    c = aug.train(ds.train_x, torch.Generator().manual_seed(2))
    assert a.shape == ds.train_x.shape and a.dtype == torch.float32
    assert torch.equal(a, b)
    if len(shape) != 4:  # volumes are not augmented by default
        assert not torch.equal(a, c)


def test_strength_zero_is_normalisation_only():
    ds = dataset((3, 8, 8))
    aug = Augmenter.for_dataset(ds, 0.0)
    x = aug.train(ds.train_x, torch.Generator().manual_seed(0))
    assert torch.allclose(x, aug.normalise(ds.train_x))
    per_channel = x.transpose(0, 1).reshape(3, -1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-4)


def test_resolution_scaling_resizes():
    ds = dataset((1, 8, 8))
    aug = Augmenter.for_dataset(ds, 0.5, resolution=1.5)
    assert aug.train(ds.train_x).shape == (16, 1, 12, 12)
    assert aug.normalise(ds.test_x).shape == (16, 1, 12, 12)


def test_crop_is_a_shifted_window():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5) + 1
    out = random_crop(x, 2, torch.Generator().manual_seed(0))
    for i in range(2):  # every non-zero pixel keeps its right-hand neighbour's offset (+1)
        row = out[i, 0]
        nz = (row[:, :-1] != 0) & (row[:, 1:] != 0)
        assert torch.all((row[:, 1:] - row[:, :-1])[nz] == 1)


def test_cutout_zeroes_a_square():
    x = torch.ones(4, 1, 10, 10)
    out = cutout(x, 4, 1.0, torch.Generator().manual_seed(0))
    zeros = (out == 0).sum(dim=(1, 2, 3))
    assert torch.all((zeros > 0) & (zeros <= 16))


def test_bad_strength():
    with pytest.raises(ValueError, match="augment strength 2"):
        Augmenter.for_dataset(dataset((1, 4, 4)), 2)
