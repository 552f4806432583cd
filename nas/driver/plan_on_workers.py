"""The plan of one search, made in the driver once Ray is up: a typical architecture of the
space is timed on a worker (:func:`workers.calibrate.seconds_per_sample`) and
:func:`nas.driver.plan.make_plan` turns that, the budget left, the data size and the number of
workers into the fidelity schedule. On large data, when that schedule would rank on less
than :data:`nas.driver.plan.MIN_RANK_EPOCHS`, the plan caps the architectures' MACs instead
(:attr:`nas.driver.plan.Plan.max_macs`): a budget that cannot rank the space's typical
architecture on a whole epoch searches the cheaper ones it can.

``--epochs`` / ``--grace-epochs`` and trial budgets (``--budget 50trials``: no clock to plan
against) fix the fidelity instead; ``--resume`` keeps the plan the search started with.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
from typing import Any

import ray

import search_spaces
from nas.core.config import SearchConfig
from nas.driver.plan import (
    DEFAULT_EPOCHS,
    DEFAULT_GRACE_EPOCHS,
    MIN_RANK_EPOCHS,
    Plan,
    affordable_seconds_per_sample,
    fixed_plan,
    folds_for,
    make_plan,
)
from nas.study.events import SearchState
from search_spaces.sampler import RandomTrial
from workers.calibrate import seconds_per_sample

logger = logging.getLogger(__name__)

TYPICAL_DRAWS = 15  # samples of the space whose median (by MACs) is timed
#: A budget cap on MACs keeps at least this share of the space's draws (the cheapest).
MIN_KEPT_SHARE = 0.2
MIN_COST_SLOPE = 0.2  # a fitted cost line flatter than this would move the cap wildly
Draw = tuple[int, dict[str, Any], dict[str, Any]]  # (MACs, spec, training settings)
_DRAWS: dict[tuple[Any, ...], list[Draw]] = {}
CALIBRATION_TIMEOUT_S = 120.0


def space_draws(cfg: SearchConfig, space: Any) -> list[Draw]:
    """A few random draws from the space, cheapest first; empty when every draw was refused.
    Drawn once per space, seed and input in a process (:func:`nas.driver.search_run.open_tracker`
    draws them while Ray starts)."""
    data = cfg.data
    space_key = (getattr(space, "name", space), getattr(space, "source", None))
    key = (space_key, cfg.seed, data.dims, data.channels, tuple(data.size), data.num_classes)
    if key not in _DRAWS:
        _DRAWS[key] = _draw(cfg, space)
    return _DRAWS[key]


def _draw(cfg: SearchConfig, space: Any) -> list[Draw]:
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
    draws.sort(key=lambda d: (d[0], d[1]))
    return [(macs, spec, train) for macs, _, spec, train in draws]


def largest_batch(space: Any) -> int:
    """The largest batch size the space draws (0 when it has none): the lowest rung's steps
    are counted at it (:data:`nas.driver.plan.MIN_RUNG_STEPS`)."""
    choice = getattr(space, "train", {}).get("batch_size")
    if choice is None:
        return 0
    return int(max(choice.values) if choice.values else choice.high)


def _median(draws: list[Draw]) -> Draw:
    return draws[len(draws) // 2]


def time_on_workers(
    cfg: SearchConfig, nets: list[tuple[dict[str, Any], dict[str, Any]]]
) -> list[float | None]:
    """Seconds per training sample of each ``(spec, train)``, measured by Ray tasks holding
    one trial's resources each (so on a cluster they run where trials run), all submitted
    at once; None for one whose timing failed."""
    data = cfg.data
    task = ray.remote(seconds_per_sample).options(
        num_cpus=cfg.cpus_per_trial, num_gpus=cfg.gpus_per_trial, max_retries=0
    )
    refs = [
        task.remote(
            spec,
            data.num_classes,
            data.channels,
            tuple(data.size),
            batch_size=int(train.get("batch_size", 64)),
            threads=max(1, int(cfg.cpus_per_trial)),
        )
        for spec, train in nets
    ]
    out: list[float | None] = []
    for ref in refs:
        try:
            out.append(float(ray.get(ref, timeout=CALIBRATION_TIMEOUT_S)))
        except (ValueError, RuntimeError, ray.exceptions.RayError) as exc:
            logger.warning("nas: timing an architecture failed (%s)", exc)
            out.append(None)
    return out


def plan_search(cfg: SearchConfig, space: Any, state: SearchState, workers: int) -> Plan:
    """The fidelity plan of a new search (see the module doc)."""
    data = cfg.data
    folds = cfg.folds or folds_for(data.train_size + data.val_size, data.smallest_class)
    pooled = data.train_size + data.val_size
    # with k folds one model trains on (k - 1) / k of training + validation, validates 1 / k
    train_size = pooled - pooled // folds if folds > 1 else data.train_size
    val_size = pooled // folds if folds > 1 else data.val_size
    if cfg.epochs is not None or cfg.budget.kind == "trials":
        epochs = cfg.epochs or DEFAULT_EPOCHS
        grace = cfg.grace_epochs or min(DEFAULT_GRACE_EPOCHS, epochs)
        return fixed_plan(epochs, grace, train_size, folds)
    draws = space_draws(cfg, space)
    try:
        if not draws:
            raise ValueError("no architecture of the space could be drawn")
        _, spec, train = _median(draws)
        per_sample = time_on_workers(cfg, [(spec, train)])[0]
        if per_sample is None:
            raise RuntimeError("see the warning above")
    except (ValueError, RuntimeError, ray.exceptions.RayError) as exc:
        logger.warning("nas: the timed step failed (%s); planning %d epochs", exc, DEFAULT_EPOCHS)
        return fixed_plan(DEFAULT_EPOCHS, DEFAULT_GRACE_EPOCHS, train_size, folds)
    left = cfg.budget.remaining(state.spent)
    if cfg.budget.kind == "device":  # device-seconds -> seconds of each of the workers
        left = left / max(state.devices_per_trial, 1e-9) / workers
    sizes = {"budget_seconds": max(left, 1.0), "train_size": train_size, "workers": workers,
             "val_size": val_size, "batch_size": largest_batch(space)}  # fmt: skip
    plan = make_plan(seconds_per_sample=per_sample, folds=folds, **sizes)
    if folds > 1 or plan.max_epochs >= MIN_RANK_EPOCHS:
        return plan
    return _capped(cfg, draws, sizes) or plan


def _capped(cfg: SearchConfig, draws: list[Draw], sizes: dict[str, Any]) -> Plan | None:
    """The plan over the cheaper architectures the budget can rank on whole epochs. Every
    draw is timed (MACs say only roughly what a sample costs: 0.9-14 ms at 28x28 for
    1-16 GMAC/s, so one timed draw scaled by MACs mis-sets the cap), and a line is fitted
    to log cost against log MACs over them; the cap is the MACs at which that line meets
    the affordable cost, never below the cheapest :data:`MIN_KEPT_SHARE` of the draws. A
    fitted line moves the cap in proportion to the timing (a cap chosen among 15 draws
    jumped several-fold on a 14% slower timing). The plan is made from the median fitted
    cost of the draws under the cap. None when the user's ``--max-macs`` is as low already,
    or fewer than two draws could be timed."""
    affordable = affordable_seconds_per_sample(**sizes)
    floor = min(len(draws) - 1, int(len(draws) * MIN_KEPT_SHARE))
    if cfg.max_macs is not None and cfg.max_macs <= draws[floor][0]:
        return None
    costs = time_on_workers(cfg, [(spec, train) for _, spec, train in draws])
    timed = [(macs, c) for (macs, _, _), c in zip(draws, costs, strict=True) if c and macs > 0]
    if len({m for m, _ in timed}) < 2:
        logger.warning("nas: fewer than two architectures could be timed; no MACs cap")
        return None
    fitted = fit_cost(timed)
    cap = max(draws[floor][0], int(fitted.macs_at(affordable)))
    if cfg.max_macs is not None and cfg.max_macs <= cap:
        return None
    under = [fitted.cost(m) for m, _, _ in draws if m <= cap] or [fitted.cost(draws[0][0])]
    plan = make_plan(seconds_per_sample=statistics.median(under), **sizes)
    return dataclasses.replace(plan, max_macs=cap)


@dataclasses.dataclass(frozen=True)
class CostLine:
    """``log(seconds per sample) = a + b * log(MACs)``, fitted to timed draws."""

    a: float
    b: float

    def cost(self, macs: float) -> float:
        return math.exp(self.a + self.b * math.log(max(macs, 1.0)))

    def macs_at(self, seconds: float) -> float:
        """The MACs at which the line reaches ``seconds`` per sample."""
        return math.exp((math.log(seconds) - self.a) / self.b)


def fit_cost(timed: list[tuple[int, float]]) -> CostLine:
    """Least squares of log cost on log MACs; the slope is kept positive (a dearer
    architecture never costs less), at least :data:`MIN_COST_SLOPE`."""
    xs = [math.log(m) for m, _ in timed]
    ys = [math.log(c) for _, c in timed]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 1.0
    b = max(b, MIN_COST_SLOPE)
    return CostLine(my - b * mx, b)
