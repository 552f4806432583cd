"""The driver's live objects for the search running in this process.

Ray pickles the Tuner's searcher, stopper and callbacks into its experiment directory and
unpickles them on ``Tuner.restore``. Those pickled objects therefore hold no clients, streams
or budgets of their own: they look up the one :class:`SearchRuntime` activated by the
current ``nas search`` process, so a resumed search tracks into the same MLflow runs, shows
the same live view and counts its budget on from what was already spent.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nas.budget import Budget

if TYPE_CHECKING:
    from nas.callbacks import LiveView
    from nas.tracking import SearchTracker


@dataclass
class SearchRuntime:
    """What the pickled Ray objects of a search reach for in the driver."""

    budget: Budget
    devices_per_trial: float
    max_epochs: int
    tracker: SearchTracker | None = None
    live: LiveView | None = None
    spent_before: float = 0.0  # budget units spent by earlier runs of this study
    started: float = field(default_factory=time.monotonic)
    device_seconds: float = 0.0
    budget_spent: threading.Event = field(default_factory=threading.Event)
    gave_up: str | None = None  # why the searcher stopped proposing trials, if it did

    @property
    def wall_seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def spent(self) -> float:
        """Budget spent so far, this run and earlier ones, in the budget's unit."""
        if self.budget.kind == "device":
            return self.spent_before + self.device_seconds
        if self.budget.kind == "wall":
            return self.spent_before + self.wall_seconds
        return self.spent_before

    def on_short_circuit(
        self,
        number: int,
        config: dict[str, Any],
        status: str,
        reason: str,
        values: list[float] | None,
    ) -> None:
        """A trial ended inside the searcher (rejected / duplicate): record it in MLflow too."""
        if self.tracker is not None:
            metrics = {"val_acc": values[0]} if values else None
            self.tracker.record_short_circuit(number, config, status, reason, metrics)
        if self.live is not None:
            self.live.on_end(status)


_current: SearchRuntime | None = None


def activate(runtime: SearchRuntime | None) -> None:
    """Make ``runtime`` the one the Ray objects of this process use (None to clear)."""
    global _current
    _current = runtime


def current() -> SearchRuntime | None:
    return _current
