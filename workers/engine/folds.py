"""k-fold evaluation of one architecture inside one trial, for small data sets.

With a few dozen training samples a 10% validation split holds a handful of them, and
validation accuracy takes two or three values: architectures tie, and the winner is luck.
Here the training and validation splits are pooled and cut into ``k`` stratified folds
(fixed per seed); ``k`` models of the same spec and settings train in lockstep, one per
fold, each validated on its own fold, and every report carries the mean validation accuracy
over the folds (``val_acc``) and its spread (``val_acc_std``). The test split is untouched.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from workers.data.dataset import Dataset
from workers.engine.loop import (
    OnEpoch,
    _free_memory,
    _guarded,
    _result,
    _start,
    _to_device,
    default_device,
)
from workers.engine.results import EpochMetrics, TrainResult
from workers.settings import TrainSettings
from workers.status import TrialStatus

FOLDS_FORMAT = "nas-fold-state/1"


def stratified_folds(y: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """The fold (0..k-1) of every sample: each class is dealt round-robin over the folds
    in a random order fixed by ``seed``, from a random first fold, so every fold holds
    each class's share to within one sample."""
    g = torch.Generator().manual_seed(seed)
    y = y.cpu()
    folds = torch.empty(len(y), dtype=torch.long)
    for c in torch.unique(y).tolist():
        members = torch.nonzero(y == c).flatten()
        members = members[torch.randperm(len(members), generator=g)]
        start = int(torch.randint(k, (1,), generator=g))
        folds[members] = (torch.arange(len(members)) + start) % k
    return folds


def fold_datasets(dataset: Dataset, k: int, seed: int) -> list[Dataset]:
    """``k`` views of ``dataset``: training + validation pooled, fold ``f`` validates."""
    x = torch.cat([dataset.train_x, dataset.val_x])
    y = torch.cat([dataset.train_y, dataset.val_y])
    folds = stratified_folds(y, k, seed).to(y.device)
    return [
        replace(
            dataset,
            train_x=x[folds != f],
            train_y=y[folds != f],
            val_x=x[folds == f],
            val_y=y[folds == f],
        )  # fmt: skip
        for f in range(k)
    ]


def _mean(metrics: list[EpochMetrics]) -> EpochMetrics:
    """One report of the k folds: means, the accuracy's spread, the first fold's position."""
    accs = [m.val_acc for m in metrics]
    return replace(
        metrics[0],
        train_loss=statistics.fmean(m.train_loss for m in metrics),
        val_loss=statistics.fmean(m.val_loss for m in metrics),
        val_acc=statistics.fmean(accs),
        val_acc_std=statistics.pstdev(accs),
        images_per_s=statistics.fmean(m.images_per_s for m in metrics),
        seconds=sum(m.seconds for m in metrics),
        folds=len(metrics),
    )


def train_folds(
    spec: dict[str, Any],
    dataset: Dataset,
    settings: TrainSettings | dict | None = None,
    *,
    folds: int,
    samples: int,
    report_at: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    on_epoch: OnEpoch | None = None,
    resume_state: dict | None = None,
) -> TrainResult:
    """Train ``spec`` on each of ``folds`` folds in lockstep for ``samples`` training
    samples, reporting the fold means after each of ``report_at`` (see the module doc).

    ``on_epoch(metrics, state)`` gets the mean :class:`EpochMetrics` (with ``val_acc_std``
    and ``folds``) and a state that ``resume_state`` continues from exactly. A failure of
    any fold (divergence, out of memory, a spec that cannot run) is the trial's status."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds={folds!r}: expected an integer >= 2")
    t_start = time.perf_counter()
    settings = TrainSettings.from_dict(settings)
    device = torch.device(device) if device is not None else default_device()
    dataset, failure = _to_device(dataset, device)
    if failure is not None:
        _free_memory(device)
        return _result(t_start, None, *failure)
    runs = []
    for data in fold_datasets(dataset, folds, seed):
        torch.manual_seed(seed)  # every fold starts from the same weights, as train() would
        run, failure = _start(spec, data, settings, (None, samples, report_at), device, seed)
        if failure is not None:
            _free_memory(device)
            return _result(t_start, None, *failure)
        runs.append(run)
    if resume_state is not None:
        for run, state in zip(runs, resume_state["folds"], strict=True):
            run.restore(state)
    states: list[dict] = [{} for _ in runs]
    reports: list[EpochMetrics] = []
    history: list[EpochMetrics] = []

    def until_next_report(f: int):
        def stop(metrics: EpochMetrics, state: dict) -> bool:
            reports.append(metrics)
            states[f] = state
            return True

        return stop

    while any(r.step < r.total_steps for r in runs):
        reports.clear()
        for f, run in enumerate(runs):
            failure = _guarded(run, until_next_report(f), device)
            if failure is not None:
                return _result(t_start, run, *failure)
        if len(reports) != len(runs):
            break
        mean = _mean(reports)
        history.append(mean)
        if on_epoch is not None and on_epoch(mean, {"format": FOLDS_FORMAT, "folds": states}):
            break
    result = _result(t_start, runs[0], TrialStatus.COMPLETED, "")
    last = history[-1] if history else None
    return replace(
        result,
        val_acc=last.val_acc if last else math.nan,
        val_loss=last.val_loss if last else math.nan,
        history=list(history),
    )
