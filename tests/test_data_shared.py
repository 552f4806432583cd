"""Loaders on the real shared data (/work/shared/data, a sibling of the repository)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workers.data import load_dataset

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def need(sub: str) -> Path:
    path = DATA / sub
    if not path.exists():
        pytest.skip(f"shared data {path} absent (expected next to the repository)")
    return path


def test_fashion_mnist_by_name_and_path():
    need("fashion-mnist")
    ds = load_dataset("fashion-mnist", DATA)
    assert (ds.channels, ds.size, ds.num_classes) == (1, (28, 28), 10)
    assert len(ds.train_x) == 54_000 and len(ds.val_x) == 6_000 and len(ds.test_x) == 10_000
    assert torch.bincount(ds.val_y).tolist() == [600] * 10
    assert load_dataset(DATA / "fashion-mnist").train_x.shape == ds.train_x.shape


def test_gunpoint_univariate():
    ds = load_dataset(need("ucr/GunPoint"))
    assert (ds.dims, ds.channels, ds.size, ds.num_classes) == (1, 1, (150,), 2)
    assert len(ds.train_x) + len(ds.val_x) == 50 and len(ds.test_x) == 150


def test_basicmotions_multivariate_string_labels():
    ds = load_dataset(need("ucr/BasicMotions"))
    assert (ds.channels, ds.size, ds.num_classes) == (6, (100,), 4)
    assert ds.classes == ("Badminton", "Running", "Standing", "Walking")
    assert ds.train_x.dtype == torch.float32 and ds.mean.shape == (6,)
