"""A Ray Tune stopper that ends the whole search when its budget is spent.

Wall-clock budgets count only the time a search is actually running: a resumed search adds
its own time to what earlier runs spent (kept in ``search.json``). Device-hour budgets sum,
over trials, each training iteration's time times the devices a trial holds. Trial-count
budgets are Ray's ``num_samples`` and need no stopper. The budget itself lives in the
driver's :class:`~nas.runtime.SearchRuntime`, so a restored stopper uses the current one.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Stopper

from nas.runtime import current


class BudgetStopper(Stopper):
    """Stops all trials once the wall-clock or device-hour budget is spent."""

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        rt = current()
        if rt is not None and "time_this_iter_s" in result:
            rt.device_seconds += float(result["time_this_iter_s"]) * rt.devices_per_trial
        return False

    def stop_all(self) -> bool:
        rt = current()
        if rt is None or rt.budget.kind == "trials":
            return False
        if rt.spent >= rt.budget.amount:
            rt.budget_spent.set()
            return True
        return False
