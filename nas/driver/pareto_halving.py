"""Successive halving for several objectives: a Ray Tune scheduler whose promotions at each
rung follow all the search's objectives, not the accuracy alone.

ASHA ranks every rung on one metric, so a search for ``accuracy,params`` would stop the
small networks first: the opposite of what was asked. Here, as in MO-ASHA (Schmucker et al.
2021), a trial that reaches a rung is ordered among those that reached it before by
non-dominated sorting, ties within a front broken by NSGA-II's crowding distance (the
extremes of a front first, so both ends of the trade-off survive), and goes on when it is
in the top ``1 / eta``, asynchronously, as ASHA decides. Costs known before training
(params, MACs) and the latency (measured before training, :mod:`workers.trainable`) are in
every report, so they take part from the first rung.

It is a :class:`ray.tune.schedulers.FIFOScheduler` that decides in ``on_trial_result``
(Ray's public scheduler API), so Ray's failure handling and ``Tuner.restore`` work as with
ASHA; it holds plain data only (Ray pickles it with the Tuner).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler


class ParetoHalving(FIFOScheduler):
    """Asynchronous successive halving over ``metrics`` (each ``max`` or ``min`` as in
    ``modes``) at the sample counts ``rungs`` (the last one, the full fidelity, decides
    nothing); ``time_attr`` is the result's fidelity key."""

    def __init__(
        self,
        *,
        metrics: list[str],
        modes: list[str],
        rungs: tuple[int, ...] | list[int],
        eta: int,
        time_attr: str,
    ) -> None:
        super().__init__()
        if len(metrics) != len(modes) or not metrics:
            raise ValueError(f"ParetoHalving: metrics {metrics} and modes {modes} must pair up")
        self.metrics, self.time_attr, self.eta = list(metrics), time_attr, int(eta)
        self.signs = [1.0 if m == "max" else -1.0 for m in modes]
        self.rungs = sorted(rungs)[:-1]
        #: rung -> {Ray trial id: objective vector, larger is better}
        self.recorded: dict[int, dict[str, list[float]]] = {r: {} for r in self.rungs}
        self.stopped = 0

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if self.time_attr not in result or any(m not in result for m in self.metrics):
            return TrialScheduler.CONTINUE
        reached = [r for r in self.rungs if result[self.time_attr] >= r]
        if not reached:
            return TrialScheduler.CONTINUE
        recorded = self.recorded[reached[-1]]
        if trial.trial_id in recorded:  # decided at this rung already
            return TrialScheduler.CONTINUE
        point = [s * float(result[m]) for s, m in zip(self.signs, self.metrics, strict=True)]
        earlier = list(recorded.values())
        recorded[trial.trial_id] = point
        if promoted(point, earlier, self.eta):
            return TrialScheduler.CONTINUE
        self.stopped += 1
        return TrialScheduler.STOP

    def debug_string(self) -> str:
        sizes = ", ".join(f"{len(self.recorded[r])} at {r:,}" for r in self.rungs)
        return f"ParetoHalving over {', '.join(self.metrics)}: {self.stopped} stopped ({sizes})"


def promoted(point: list[float], earlier: list[list[float]], eta: int) -> bool:
    """True when ``point`` is among the best ``max(1, ceil(n / eta))`` of the ``n`` points
    it and ``earlier`` make, in :func:`pareto_order` (larger is better in every
    objective). With one objective this is ASHA's rule."""
    points = np.asarray([*earlier, point], dtype=float)
    if not np.all(np.isfinite(points[-1])):
        return False
    keep = max(1, math.ceil(len(points) / eta))
    return len(points) - 1 in pareto_order(points)[:keep]


def pareto_order(points: np.ndarray) -> list[int]:
    """Indices of ``points`` (rows; larger is better in every column) best first: by
    non-dominated front, then by crowding distance within a front (largest first), then
    the later first (so that, as in ASHA, a point that ties the ones before it goes on).
    Quadratic in the number of points, per front peeled."""
    points = np.where(np.isfinite(points), points, -np.inf)
    left = np.arange(len(points))
    order: list[int] = []
    while left.size:
        sub = points[left]
        # dominated[i]: some j is >= in every objective and > in one
        ge = np.all(sub[None, :, :] >= sub[:, None, :], axis=2)
        gt = np.any(sub[None, :, :] > sub[:, None, :], axis=2)
        dominated = np.any(ge & gt, axis=1)
        front = left[~dominated]
        distance = crowding_distance(points[front])
        order += [
            int(front[i]) for i in sorted(range(len(front)), key=lambda i: (-distance[i], -i))
        ]
        left = left[dominated]
    return order


def crowding_distance(front: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each point of one front: the extremes of each
    objective get infinity, the others the sum over objectives of the normalised gap
    between their neighbours."""
    n, k = front.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(k):
        order = np.argsort(front[:, j], kind="stable")
        low, high = front[order[0], j], front[order[-1], j]
        distance[order[0]] = distance[order[-1]] = np.inf
        if high > low and np.isfinite(high - low):
            gaps = (front[order[2:], j] - front[order[:-2], j]) / (high - low)
            distance[order[1:-1]] += gaps
    return distance
