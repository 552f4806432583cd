"""Successive halving over several objectives (issue 29): promotions follow the Pareto order,
so a search for accuracy and a cost keeps the small networks it asked for."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from ray.tune.schedulers import TrialScheduler

from nas.driver.pareto_halving import ParetoHalving, crowding_distance, pareto_order, promoted

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


@dataclass
class FakeTrial:  # what the scheduler reads of Ray's Trial: its id
    trial_id: str


def _scheduler(eta: int = 3) -> ParetoHalving:
    return ParetoHalving(metrics=["val_acc", "params"], modes=["max", "min"],
                         rungs=(100, 300, 900), eta=eta, time_attr="samples")  # fmt: skip


def _report(s: ParetoHalving, tid: str, samples: int, acc: float, params: int) -> str:
    return s.on_trial_result(None, FakeTrial(tid), {"samples": samples, "val_acc": acc,
                                                    "params": params})  # fmt: skip


def test_fronts_come_first_and_their_extremes_lead_them():
    # larger is better in both columns; (1, 1) is dominated by (2, 2)
    points = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 0.0], [0.0, 3.0], [2.5, 1.5]])
    order = pareto_order(points)
    assert set(order[:4]) == {1, 2, 3, 4} and order[-1] == 0
    assert set(order[:2]) == {2, 3}  # the front's extremes, infinite crowding distance
    assert pareto_order(np.array([[1.0], [1.0]])) == [1, 0]  # a tie: the later first


def test_crowding_distance_of_a_front():
    front = np.array([[0.0, 4.0], [1.0, 2.0], [4.0, 0.0]])
    d = crowding_distance(front)
    assert np.isinf(d[0]) and np.isinf(d[2])
    assert d[1] == pytest.approx((4 - 0) / 4 + (4 - 0) / 4)


def test_one_objective_promotes_as_asha_does():
    # ASHA at eta 3: the first goes on; the second only when at least as good
    assert promoted([0.5], [], 3)
    assert promoted([0.6], [[0.5]], 3) and not promoted([0.4], [[0.5]], 3)
    assert promoted([0.5], [[0.5]], 3)  # ASHA stops only below the cutoff
    # four seen: the best two (ceil(4 / 3)) go on
    assert promoted([0.7], [[0.9], [0.5], [0.6]], 3)
    assert not promoted([0.55], [[0.9], [0.5], [0.6]], 3)


def test_a_small_network_that_trades_accuracy_for_size_goes_on():
    s = _scheduler()
    assert _report(s, "big", 100, 0.90, 1_000_000) == CONTINUE
    assert _report(s, "mid", 100, 0.85, 900_000) == CONTINUE  # on the front with big
    assert _report(s, "tiny", 100, 0.60, 10_000) == CONTINUE  # on the front, an extreme
    assert _report(s, "worse", 100, 0.50, 2_000_000) == STOP  # dominated by every one


def test_each_rung_decides_once_and_the_last_rung_decides_nothing():
    s = _scheduler()
    assert _report(s, "a", 100, 0.9, 10) == CONTINUE
    assert _report(s, "a", 150, 0.1, 10) == CONTINUE  # between rungs: no decision again
    assert _report(s, "b", 100, 0.5, 20) == STOP
    assert _report(s, "a", 300, 0.9, 10) == CONTINUE
    assert _report(s, "a", 900, 0.9, 10) == CONTINUE  # full fidelity: the trial ends itself
    assert _report(s, "c", 50, 0.1, 99) == CONTINUE  # before the first rung
    assert s.on_trial_result(None, FakeTrial("d"), {"samples": 100}) == CONTINUE  # no values
    assert "1 stopped" in s.debug_string()


def test_a_nan_accuracy_never_goes_on():
    assert not promoted([float("nan"), -10.0], [], 3)


def test_a_multi_objective_search_halves_over_all_its_objectives():
    from types import SimpleNamespace

    from ray.tune.schedulers import AsyncHyperBandScheduler

    from nas.driver.plan import fixed_plan
    from nas.driver.search_run import make_scheduler

    plan = fixed_plan(9, 1, 100)
    multi = SimpleNamespace(scheduler="asha", multi_objective=True,
                            metrics=["val_acc", "params"], modes=["max", "min"])  # fmt: skip
    s = make_scheduler(multi, plan)
    assert isinstance(s, ParetoHalving) and s.rungs == list(plan.rungs[:-1])
    one = SimpleNamespace(scheduler="asha", multi_objective=False)
    assert isinstance(make_scheduler(one, plan), AsyncHyperBandScheduler)
