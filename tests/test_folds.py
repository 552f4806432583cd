"""k-fold evaluation inside one trial: stratified deterministic folds, the fold mean, resume."""

from __future__ import annotations

import statistics

import pytest
import torch
from torch import nn

import workers
from workers.engine.folds import fold_datasets, stratified_folds, train_folds

FAST = {"batch_size": 16, "lr": 0.05, "augment": 0.0, "flip": False}


def _small(n_per_class=(12, 8, 5), seed=0) -> workers.Dataset:
    """A generated small 1-D set: three classes told apart by the mean of their series."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    x = torch.randn(len(ys), 1, 24, generator=g) + ys.view(-1, 1, 1).float()
    split = len(ys) * 3 // 4
    order = torch.randperm(len(ys), generator=g)
    tr, va = order[:split], order[split:]
    return workers.Dataset(
        name="small", num_classes=3, dims=1, channels=1, size=(24,),
        train_x=x[tr], train_y=ys[tr], val_x=x[va], val_y=ys[va],
        test_x=x[va], test_y=ys[va], mean=torch.zeros(1), std=torch.ones(1),
    )  # fmt: skip


def test_folds_are_stratified_and_fixed_per_seed():
    y = torch.tensor([0] * 12 + [1] * 8 + [2] * 5)
    folds = stratified_folds(y, 4, seed=3)
    assert torch.equal(folds, stratified_folds(y, 4, seed=3))
    assert not torch.equal(folds, stratified_folds(y, 4, seed=4))
    for c, n in ((0, 12), (1, 8), (2, 5)):
        per_fold = torch.bincount(folds[y == c], minlength=4).tolist()
        assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == n


def test_fold_views_pool_train_and_validation():
    data = _small()
    views = fold_datasets(data, 5, seed=0)
    total = len(data.train_y) + len(data.val_y)
    assert all(len(v.train_y) + len(v.val_y) == total for v in views)
    assert sum(len(v.val_y) for v in views) == total  # every sample validates exactly once


def _spec() -> dict:
    return {
        "version": 1, "input": {"dims": 1, "channels": 1, "size": [24]},
        "stem": [{"type": "conv", "out": 8, "kernel": 3}],
        "stages": [{"block": {"type": "conv", "kernel": 3}, "out": 8, "repeats": 1, "stride": 1}],
        "head": {"pool": "avg", "hidden": [], "dropout": 0.0},
    }  # fmt: skip


def test_the_objective_is_the_fold_mean():
    data, seen = _small(), []
    r = train_folds(
        _spec(), data, FAST, folds=4, samples=400, report_at=[100], device="cpu", seed=1,
        on_epoch=lambda m, s: seen.append(m) and False,
    )  # fmt: skip
    assert r.ok and [m.folds for m in seen] == [4, 4] and seen[-1].val_acc == r.val_acc
    views = fold_datasets(data, 4, seed=1)
    singles = [
        workers.train(_spec(), v, FAST, samples=400, report_at=[100], device="cpu", seed=1)
        for v in views
    ]
    # the lockstep training of each fold equals training that fold alone
    assert seen[-1].val_acc == pytest.approx(statistics.fmean(s.val_acc for s in singles))
    assert seen[-1].val_acc_std == pytest.approx(statistics.pstdev(s.val_acc for s in singles))


def test_fold_training_resumes_exactly(tmp_path):
    data = _small()
    full = train_folds(_spec(), data, FAST, folds=3, samples=300, report_at=[70], seed=2,
                       device="cpu")  # fmt: skip

    def stop(metrics, state):
        workers.save_checkpoint(tmp_path / "folds.pt", state)
        return True

    train_folds(_spec(), data, FAST, folds=3, samples=300, report_at=[70], seed=2,
                device="cpu", on_epoch=stop)  # fmt: skip
    state = workers.load_checkpoint(tmp_path / "folds.pt")
    resumed = train_folds(_spec(), data, FAST, folds=3, samples=300, report_at=[70], seed=2,
                          device="cpu", resume_state=state)  # fmt: skip
    assert resumed.val_acc == full.val_acc and resumed.val_loss == full.val_loss


def test_bad_fold_count_raises():
    with pytest.raises(ValueError, match="folds=1"):
        train_folds(_spec(), _small(), FAST, folds=1, samples=100, device="cpu")


def test_a_fold_that_cannot_run_is_the_trial_status():
    r = train_folds(nn.Sequential(nn.Flatten(), nn.Linear(5, 3)), _small(), FAST, folds=2,
                    samples=100, device="cpu")  # fmt: skip
    assert r.status == "invalid"
