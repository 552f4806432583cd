"""The life of a trial as typed events, and the one object that holds a search's state.

Ray's adapters (:mod:`nas.driver.ray_adapters`, :mod:`nas.driver.searcher`) turn Ray's calls into these
events and hand them to :meth:`SearchState.emit`; the state updates its counters, budget and
best value, then passes each event to its subscribers (MLflow tracking, the live view),
which import neither Ray nor a global::

    searcher --TrialRejected / TrialReused / TrialCancelled--+
    callback --TrialStarted / EpochReported / TrialEnded / Progress--> SearchState --> subscribers
    stopper  <--budget_is_spent()-----------+
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nas.core.budget import Budget
from nas.study.status_table import TrialStatus, row
from workers.trial import PARAMS, STATUS, VAL_ACC, TrialConfig


@dataclass(frozen=True)
class TrialStarted:
    """A worker started (or resumed) training the trial."""

    number: int
    config: TrialConfig
    ray_trial_id: str | None = None


@dataclass(frozen=True)
class TrialRecovered:
    """A trial's worker died (process or node); Ray retries it from its last checkpoint."""

    number: int
    failures: int


@dataclass(frozen=True)
class EpochReported:
    """The worker reported a fidelity point (``samples`` trained) with its metrics."""

    number: int
    result: dict[str, Any]


@dataclass(frozen=True)
class TrialEnded:
    """A trial that reached a worker ended, with its status and reason."""

    number: int
    status: TrialStatus
    reason: str | None = None
    extra: dict[str, Any] | None = None


@dataclass(frozen=True)
class TrialReused:
    """An identical spec + settings was evaluated before: its result, nothing trained.
    ``status`` is ``reused``, or ``pruned`` when the earlier trial was pruned."""

    number: int
    config: TrialConfig
    earlier: int
    status: TrialStatus
    values: list[float] | None
    reason: str


@dataclass(frozen=True)
class TrialNeverRan:
    """A trial that ended without reaching a worker, with its status and reason."""

    number: int
    config: TrialConfig
    reason: str
    status: TrialStatus


@dataclass(frozen=True)
class TrialRejected(TrialNeverRan):
    """A sample over a limit or refused by the catalog: it never reaches a worker."""

    status: TrialStatus = TrialStatus.REJECTED


@dataclass(frozen=True)
class TrialCancelled(TrialNeverRan):
    """Ray was handed the trial, but the budget ran out before a worker started it."""

    status: TrialStatus = TrialStatus.STOPPED


@dataclass(frozen=True)
class TrialLost(TrialNeverRan):
    """A trial found RUNNING by a later driver: the driver that ran it was killed before Ray
    saved it, so it cannot be resumed."""

    status: TrialStatus = TrialStatus.DRIVER_LOST


@dataclass(frozen=True)
class Progress:
    """Ray finished a scheduling step; ``running`` trials are training now."""

    running: int


Event = (
    TrialStarted
    | TrialRecovered
    | EpochReported
    | TrialEnded
    | TrialReused
    | TrialRejected
    | TrialCancelled
    | Progress
)


@dataclass
class SearchState:
    """The state of one running search in the driver: budget spent, counters, best value.

    ``spent_before`` is what earlier runs of the study spent (``--resume``), in the budget's
    unit; wall-clock time counts from :meth:`start_clock` (when Ray starts running trials:
    start-up, the plan's timed step and the warm start are not counted), device time from
    the reported ``time_this_iter_s`` of every step times the devices a trial holds.
    """

    budget: Budget
    devices_per_trial: float
    metric: str = VAL_ACC
    chance: float = 0.0  # a completed trial at or below this accuracy is diverged
    spent_before: float = 0.0
    started: float | None = None
    device_seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    trials_started: int = 0
    recoveries: int = 0
    stop_reason: str | None = None  # set to stop the search before its budget (disk full)
    #: wall-clock seconds of the budget kept back for evaluating the best trials again:
    #: trials stop starting that much before the budget's end
    reserved: float = 0.0
    running: int = 0
    best: float | None = None
    best_trial: int | None = None  # the trial that reached ``best``
    best_params: int | None = None  # its parameter count, when reported
    gave_up: str | None = None  # why the searcher stopped proposing trials, if it did
    budget_spent: threading.Event = field(default_factory=threading.Event)
    open_trials: dict[int, Any] = field(default_factory=dict)  # number -> optuna.Trial
    open_configs: dict[int, TrialConfig] = field(default_factory=dict)  # number -> config
    started_numbers: set[int] = field(default_factory=set)
    #: Ray trial ids restored from a checkpoint older than the study: their Optuna trial
    #: ended under an earlier driver, so Ray stops them and no event is emitted for them.
    stale_trials: set[str] = field(default_factory=set)
    #: The driver's live handles (optuna.Study, its storage, the define-by-run sampler):
    #: Ray's pickled searcher keeps none of them and finds them here on a restore.
    study: Any = None
    storage: Any = None
    define_by_run: Any = None
    _subscribers: list[Callable[[Event], None]] = field(default_factory=list)

    def subscribe(self, handler: Callable[[Event], None]) -> None:
        """Call ``handler(event)`` for every event, after the state has taken it in."""
        self._subscribers.append(handler)

    def emit(self, event: Event) -> None:
        """Take ``event`` in, then pass it to every subscriber."""
        self._apply(event)
        for handler in self._subscribers:
            handler(event)

    def _apply(self, event: Event) -> None:
        if isinstance(event, TrialStarted):
            if event.number not in self.started_numbers:  # a retried trial starts again
                self.trials_started += 1
            self.started_numbers.add(event.number)
        elif isinstance(event, TrialRecovered):
            self.recoveries += 1
        elif isinstance(event, EpochReported):
            self._apply_result(event.number, event.result)
        elif isinstance(event, TrialEnded | TrialReused | TrialNeverRan):
            column = row(event.status).column
            self.counts[column] = self.counts.get(column, 0) + 1
            if isinstance(event, TrialReused) and event.values:
                self._improve(event.values[0], event.number, event.config.params)
        elif isinstance(event, Progress):
            self.running = event.running

    def _apply_result(self, number: int, result: dict[str, Any]) -> None:
        if "time_this_iter_s" in result:
            self.device_seconds += float(result["time_this_iter_s"]) * self.devices_per_trial
        if TrialStatus.parse(result.get(STATUS)) in (TrialStatus.RUNNING, TrialStatus.COMPLETED):
            self._improve(result.get(self.metric), number, result.get(PARAMS))

    def _improve(self, value: Any, number: int, params: Any) -> None:
        if isinstance(value, int | float) and math.isfinite(value):
            if self.best is None or value > self.best:
                self.best, self.best_trial = value, number
                self.best_params = int(params) if isinstance(params, int | float) else None

    # -- budget ----------------------------------------------------------------------------

    def start_clock(self) -> None:
        """Wall-clock budgets count from now (Ray is about to run trials)."""
        if self.started is None:
            self.started = time.monotonic()

    @property
    def wall_seconds(self) -> float:
        return 0.0 if self.started is None else time.monotonic() - self.started

    @property
    def spent(self) -> float:
        """Budget spent so far, this run and earlier ones, in the budget's unit."""
        if self.budget.kind == "device":
            return self.spent_before + self.device_seconds
        if self.budget.kind == "wall":
            return self.spent_before + self.wall_seconds
        return self.spent_before

    @property
    def stopped_why(self) -> str | None:
        """Why the search is stopping every trial now (the budget, or :attr:`stop_reason`)."""
        if self.stop_reason:
            return self.stop_reason
        return "the budget ran out" if self.budget_spent.is_set() else None

    def check_budget(self) -> bool:
        """True (and remembered) once a wall-clock or device budget is spent, or the search
        must stop early (:attr:`stop_reason`); a trial budget is Ray's ``num_samples``."""
        kept = self.reserved if self.budget.kind == "wall" else 0.0
        if self.budget.kind != "trials" and self.spent >= self.budget.amount - kept:
            self.budget_spent.set()
        return self.budget_spent.is_set() or self.stop_reason is not None
