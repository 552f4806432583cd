"""Every loader on small generated files, corrupt ones included (DataError names the file)."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from workers.data import DataError, get_dataset, list_datasets, load_dataset
from workers.data.dataset import stratified_split


def write_idx(
    folder: Path,
    n_train: int = 40,
    n_test: int = 20,
    *,
    magic: int = 2051,
    n_labels: int | None = None,
    truncate: bool = False,
) -> Path:
    rng = np.random.RandomState(0)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.randint(0, 256, (n, 28, 28)).astype(np.uint8)
        y = (np.arange(n_labels if n_labels is not None else n) % 10).astype(np.uint8)
        img = (
            magic.to_bytes(4, "big")
            + b"".join(v.to_bytes(4, "big") for v in (n, 28, 28))
            + x.tobytes()
        )
        lab = (2049).to_bytes(4, "big") + len(y).to_bytes(4, "big") + y.tobytes()
        img_gz = gzip.compress(img)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            img_gz[: len(img_gz) // 2] if truncate else img_gz
        )
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(lab))
    return folder


def write_cifar(folder: Path, variant: str = "cifar10", n: int = 20) -> Path:
    rng = np.random.RandomState(0)
    folder.mkdir(parents=True, exist_ok=True)
    key = b"labels" if variant == "cifar10" else b"fine_labels"
    k = 10 if variant == "cifar10" else 100
    names = (
        [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        if variant == "cifar10"
        else ["train", "test"]
    )
    for name in names:
        batch = {
            b"data": rng.randint(0, 256, (n, 3072)).astype(np.uint8),
            key: list(np.arange(n) % k),
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh)
    return folder


def write_ts(folder: Path, name: str = "Toy", channels: int = 2, lengths=(12, 12)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    for split, n in (("TRAIN", 12), ("TEST", 6)):
        lines = [f"@problemName {name}", "@univariate false", "@classLabel true a b", "@data"]
        for i in range(n):
            length = lengths[i % len(lengths)]
            chans = [",".join(f"{v:.3f}" for v in rng.randn(length)) for _ in range(channels)]
            lines.append(":".join(chans) + (":a" if i % 2 else ":b"))
        (folder / f"{name}_{split}.ts").write_text("\n".join(lines) + "\n")
    return folder


def write_images(folder: Path, sizes=((6, 5),), per_class: int = 5, classes=("cat", "dog")) -> Path:
    from PIL import Image

    rng = np.random.RandomState(0)
    for c in classes:
        (folder / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = sizes[i % len(sizes)]
            Image.fromarray(rng.randint(0, 256, (h, w, 3)).astype(np.uint8)).save(
                folder / c / f"{i}.png"
            )
    return folder


def test_idx_folder(tmp_path):
    ds = load_dataset(write_idx(tmp_path / "m"), val_fraction=0.25)
    assert (ds.dims, ds.channels, ds.size, ds.num_classes) == (2, 1, (28, 28), 10)
    assert ds.train_x.dtype == torch.uint8 and ds.train_y.dtype == torch.int64
    assert len(ds.train_x) + len(ds.val_x) == 40 and len(ds.test_x) == 20


def test_named_mnist_uses_data_dir(tmp_path):
    write_idx(tmp_path / "mnist")
    assert load_dataset("mnist", tmp_path).name == "mnist"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"magic": 2050}, "bad magic number 2050, expected 2051"),
        ({"n_labels": 7}, "labels, expected"),
        ({"truncate": True}, "expected a complete .gz file"),
    ],
)
def test_idx_corrupt(tmp_path, kwargs, message):
    folder = write_idx(tmp_path / "bad", **kwargs)
    with pytest.raises(DataError, match=message) as err:
        load_dataset(folder)
    assert str(folder) in str(err.value)


@pytest.mark.parametrize("variant, k", [("cifar10", 10), ("cifar100", 100)])
def test_cifar(tmp_path, variant, k):
    write_cifar(tmp_path / variant, variant)
    ds = load_dataset(variant, tmp_path, val_fraction=0.0)
    assert (ds.channels, ds.size, ds.num_classes) == (3, (32, 32), k)
    assert len(ds.test_x) == 20


def test_cifar_corrupt(tmp_path):
    folder = write_cifar(tmp_path / "c")
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_3: not a CIFAR batch"):
        load_dataset(folder)


def test_npz_images_and_series(tmp_path):
    rng = np.random.RandomState(0)
    y = np.arange(30) % 3
    np.savez(
        tmp_path / "img.npz",
        x_train=rng.randint(0, 255, (30, 9, 9)).astype(np.uint8),
        y_train=y,
        x_test=rng.randint(0, 255, (30, 9, 9)).astype(np.uint8),
        y_test=y,
    )
    np.savez(
        tmp_path / "ser.npz",
        x_train=rng.randn(30, 2, 16),
        y_train=y,
        x_test=rng.randn(30, 2, 16),
        y_test=y,
    )
    np.savez(
        tmp_path / "vol.npz",
        x_train=rng.randn(30, 1, 4, 4, 4),
        y_train=y,
        x_test=rng.randn(30, 1, 4, 4, 4),
        y_test=y,
    )
    img, ser, vol = (load_dataset(tmp_path / f"{n}.npz") for n in ("img", "ser", "vol"))
    assert (img.dims, img.channels, img.train_x.dtype) == (2, 1, torch.uint8)
    assert (ser.dims, ser.channels, ser.train_x.dtype) == (1, 2, torch.float32)
    assert (vol.dims, vol.size) == (3, (4, 4, 4))


def test_npz_missing_key(tmp_path):
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((3, 4, 4)))
    with pytest.raises(DataError, match=r"bad.npz: missing arrays"):
        load_dataset(tmp_path / "bad.npz")


def test_ts_multivariate_string_labels_and_padding(tmp_path):
    ds = load_dataset(write_ts(tmp_path / "Toy", lengths=(12, 9)))
    assert ds.classes == ("a", "b") and ds.channels == 2 and ds.size == (12,)
    assert ds.test_x[1, :, 9:].abs().sum() == 0  # case 1 (length 9) is zero-padded


def test_ts_missing_test_file(tmp_path):
    folder = write_ts(tmp_path / "Toy")
    (folder / "Toy_TEST.ts").unlink()
    with pytest.raises(DataError, match="Toy_TEST.ts: no such file"):
        load_dataset(folder)


def test_image_folder_and_resize(tmp_path):
    ds = load_dataset(write_images(tmp_path / "imgs"), val_fraction=0.0)
    assert (ds.channels, ds.size, ds.num_classes, ds.classes) == (3, (5, 6), 2, ("cat", "dog"))
    mixed = write_images(tmp_path / "mixed", sizes=((6, 5), (7, 7)))
    with pytest.raises(DataError, match=r"1.png: size 7x7, expected 6x5"):
        load_dataset(mixed)
    assert load_dataset(mixed, resize=4).size == (4, 4)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: empty or unrecognised folder"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "noimg" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="noimg: no images"):
        load_dataset(tmp_path / "noimg")


def test_unknown_name_and_missing_dir(tmp_path):
    with pytest.raises(DataError, match="imagenet-9000: unknown data set"):
        load_dataset("imagenet-9000")
    with pytest.raises(DataError, match="no such folder"):
        load_dataset("mnist", tmp_path / "nowhere")
    assert "digits" in list_datasets()


def test_digits_split_and_cache():
    ds = get_dataset("digits", seed=3)
    assert get_dataset("digits", seed=3) is ds
    assert len(ds.train_x) + len(ds.val_x) + len(ds.test_x) == 1797
    assert 355 <= len(ds.test_x) <= 362 and ds.train_x.max() > 200
    other = load_dataset("digits", seed=4)
    assert torch.equal(other.test_x, ds.test_x)  # the test split never depends on the seed
    assert not torch.equal(other.val_y, ds.val_y) or not torch.equal(other.val_x, ds.val_x)


def test_stratified_split_is_deterministic_and_stratified():
    y = np.repeat(np.arange(4), 10)
    keep, held = stratified_split(y, 0.2, seed=1)
    assert np.bincount(y[held]).tolist() == [2, 2, 2, 2]
    assert np.array_equal(held, stratified_split(y, 0.2, seed=1)[1])
