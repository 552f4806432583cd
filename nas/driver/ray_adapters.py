"""Ray Tune's side of the lifecycle: a callback and a stopper that turn Ray's calls into
events on the driver's :class:`~nas.study.events.SearchState`.

Ray pickles the Tuner's searcher, stopper and callbacks into its experiment folder and
unpickles them on ``Tuner.restore``, so these objects keep only the study's name and find
the live state of the search running in this process through :func:`active`. That lookup
is the one process-wide registry of the driver; the subscribers (tracking, live view) get
their events from the state and never see it.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback, Stopper

from nas.study.events import (
    EpochReported,
    Progress,
    SearchState,
    TrialEnded,
    TrialRecovered,
    TrialStarted,
)
from nas.study.status_table import classify
from workers.trial import TRIAL_NUMBER, TrialConfig

_ACTIVE: dict[str, SearchState] = {}


def activate(study: str, state: SearchState | None) -> None:
    """Make ``state`` the live state of ``study`` in this process (None to clear)."""
    if state is None:
        _ACTIVE.pop(study, None)
    else:
        _ACTIVE[study] = state


def active(study: str) -> SearchState | None:
    """The live state of ``study``, when a search of it runs in this process."""
    return _ACTIVE.get(study)


def _live(study: str, trial: Any) -> SearchState | None:
    """The live state, unless ``trial`` is stale (its Optuna trial ended before a restore)."""
    state = active(study)
    if state is None or trial.trial_id in state.stale_trials:
        return None
    return state


def trial_number(trial: Any) -> int:
    """The Optuna trial number a Ray trial carries in its config."""
    # read on every result: the one key, not the whole config parsed again
    return int(trial.config[TRIAL_NUMBER])


class EventCallback(Callback):
    """Ray trial start / result / end / step -> events on the study's state."""

    def __init__(self, study: str) -> None:
        self.study = study

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        state = _live(self.study, trial)
        if state is not None:
            state.emit(
                TrialStarted(
                    trial_number(trial), TrialConfig.from_dict(trial.config), trial.trial_id
                )
            )

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        state = _live(self.study, trial)
        if state is not None:
            state.emit(EpochReported(trial_number(trial), result))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        state = _live(self.study, trial)
        if state is not None:
            state.emit(TrialRecovered(trial_number(trial), int(trial.num_failures)))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial, error=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial, error=True)

    def _ended(self, trial: Any, error: bool) -> None:
        state = _live(self.study, trial)
        if state is None:
            return
        status, reason = classify(trial.last_result, error, state.stopped_why, state.chance)
        extra = _diagnostics(trial, error)
        state.emit(TrialEnded(trial_number(trial), status, reason, extra))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        state = active(self.study)
        if state is not None:
            state.emit(Progress(sum(1 for t in trials if t.status == "RUNNING")))


def _diagnostics(trial: Any, error: bool) -> dict[str, str] | None:
    """What a failed trial leaves for its MLflow run: the traceback and worker log tail it
    reported, or (Ray gave up on it) Ray's error file, read where the driver can."""
    last = trial.last_result or {}
    found = {k: str(last[k]) for k in ("traceback", "log_tail") if last.get(k)}
    error_file = getattr(trial, "error_file", None) if error else None
    if error_file:
        found["error_file"] = str(error_file)
        try:
            with open(error_file, encoding="utf-8", errors="replace") as f:
                found.setdefault("traceback", f.read()[-20000:])
        except OSError:
            pass  # on remote storage: the path is still recorded
    return found or None


class BudgetStopper(Stopper):
    """Stops every trial once the study's wall-clock or device-hour budget is spent.

    Wall-clock budgets count only the time a search is running: a resumed search adds its
    own time to what earlier runs spent (``search.json``); trial budgets are Ray's
    ``num_samples`` and need no stopper. It also stops, at its first result, a trial Ray
    restored whose Optuna trial had already ended (the state's ``stale_trials``).
    """

    def __init__(self, study: str) -> None:
        self.study = study

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        state = active(self.study)
        return state is not None and trial_id in state.stale_trials

    def stop_all(self) -> bool:
        state = active(self.study)
        return state is not None and state.check_budget()
