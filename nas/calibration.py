"""The plan of one search, made in the driver once Ray is up: a typical architecture of the
space is timed on a worker (:func:`workers.calibrate.seconds_per_sample`) and
:func:`nas.plan.make_plan` turns that, the budget left, the data size and the number of
workers into the fidelity schedule.

``--epochs`` / ``--grace-epochs`` and trial budgets (``--budget 50trials``: no clock to plan
against) fix the fidelity instead; ``--resume`` keeps the plan the search started with.
"""

from __future__ import annotations

import logging
from typing import Any

import ray

import search_spaces
from nas.config import SearchConfig
from nas.events import SearchState
from nas.plan import Plan, fixed_plan, make_plan
from search_spaces.sampler import RandomTrial
from workers.calibrate import seconds_per_sample

logger = logging.getLogger(__name__)

TYPICAL_DRAWS = 15  # samples of the space whose median (by MACs) is timed
_DRAWS: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]] | None] = {}
DEFAULT_EPOCHS = 12  # the fidelity of trial budgets
DEFAULT_GRACE_EPOCHS = 2
CALIBRATION_TIMEOUT_S = 120.0


def typical_draw(cfg: SearchConfig, space: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(spec, training settings) of the median-MACs architecture of a few random draws from
    the space, or None when every draw was refused. Drawn once per space, seed and input in
    a process (:func:`nas.search_run.open_tracker` draws it while Ray starts)."""
    data = cfg.data
    space_key = (getattr(space, "name", space), getattr(space, "source", None))
    key = (space_key, cfg.seed, data.dims, data.channels, tuple(data.size), data.num_classes)
    if key not in _DRAWS:
        _DRAWS[key] = _median_draw(cfg, space)
    return _DRAWS[key]


def _median_draw(cfg: SearchConfig, space: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
    data = cfg.data
    draws = []
    for i in range(TYPICAL_DRAWS):
        try:
            spec, train = search_spaces.sample(
                RandomTrial(cfg.seed * 1000 + i),
                space,
                dims=data.dims,
                channels=data.channels,
                size=tuple(data.size),
                num_classes=data.num_classes,
            )
            macs = search_spaces.count(spec, data.num_classes).macs
        except ValueError:
            continue
        draws.append((macs, i, spec, train))
    if not draws:
        return None
    draws.sort(key=lambda d: (d[0], d[1]))
    _, _, spec, train = draws[len(draws) // 2]
    return spec, train


def time_on_worker(cfg: SearchConfig, spec: dict[str, Any], train: dict[str, Any]) -> float:
    """Seconds per training sample of ``spec``, measured by a Ray task holding one trial's
    resources (so on a cluster it runs where trials run)."""
    data = cfg.data
    task = ray.remote(seconds_per_sample).options(
        num_cpus=cfg.cpus_per_trial, num_gpus=cfg.gpus_per_trial, max_retries=0
    )
    ref = task.remote(
        spec,
        data.num_classes,
        data.channels,
        tuple(data.size),
        batch_size=int(train.get("batch_size", 64)),
        threads=max(1, int(cfg.cpus_per_trial)),
    )
    return float(ray.get(ref, timeout=CALIBRATION_TIMEOUT_S))


def plan_search(cfg: SearchConfig, space: Any, state: SearchState, workers: int) -> Plan:
    """The fidelity plan of a new search (see the module doc)."""
    data, folds = cfg.data, cfg.folds or cfg.data.folds
    pooled = data.train_size + data.val_size
    # with k folds one model trains on (k - 1) / k of training + validation, validates 1 / k
    train_size = pooled - pooled // folds if folds > 1 else data.train_size
    val_size = pooled // folds if folds > 1 else data.val_size
    if cfg.epochs is not None or cfg.budget.kind == "trials":
        epochs = cfg.epochs or DEFAULT_EPOCHS
        grace = cfg.grace_epochs or min(DEFAULT_GRACE_EPOCHS, epochs)
        return fixed_plan(epochs, grace, train_size, folds)
    draw = typical_draw(cfg, space)
    try:
        if draw is None:
            raise ValueError("no architecture of the space could be drawn")
        per_sample = time_on_worker(cfg, *draw)
    except (ValueError, RuntimeError, ray.exceptions.RayError) as exc:
        logger.warning("nas: the timed step failed (%s); planning %d epochs", exc, DEFAULT_EPOCHS)
        return fixed_plan(DEFAULT_EPOCHS, DEFAULT_GRACE_EPOCHS, train_size, folds)
    left = cfg.budget.remaining(state.spent)
    if cfg.budget.kind == "device":  # device-seconds -> seconds of each of the workers
        left = left / max(state.devices_per_trial, 1e-9) / workers
    return make_plan(
        budget_seconds=max(left, 1.0),
        train_size=train_size,
        workers=workers,
        seconds_per_sample=per_sample,
        val_size=val_size,
        folds=folds,
    )
