"""The status table: every status of :class:`workers.status.TrialStatus`, mapped once to
Optuna's trial state, MLflow's run status, the leaderboard's rank group and the live view's
counter. MLflow has five run statuses and its UI draws three marks (a green tick for
FINISHED, a red cross for FAILED and KILLED, a spinner for RUNNING): FINISHED means trained
to full fidelity, KILLED ended early on purpose (pruned, stopped by the budget or the driver
going away), FAILED went wrong; the ``nas.status`` tag (a column of the trials view,
:mod:`nas.tracking.view`) and the run's description say which status exactly.

Everything that records or shows a trial reads this table; nothing else maps statuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.status import TrialStatus
from workers.trial import STATUS, VAL_ACC

__all__ = [
    "TrialStatus",
    "StatusRow",
    "TABLE",
    "row",
    "classify",
    "chance_level",
    "ENGINE_FAILURES",
]


@dataclass(frozen=True)
class StatusRow:
    """How one status is stored and shown."""

    optuna: str  # optuna.trial.TrialState name
    mlflow: str  # mlflow RunStatus name
    rank: int  # leaderboard group: lower ranks first
    column: str  # live-view counter


S = TrialStatus
TABLE: dict[TrialStatus, StatusRow] = {
    S.RUNNING: StatusRow("RUNNING", "RUNNING", 2, "running"),
    S.COMPLETED: StatusRow("COMPLETE", "FINISHED", 0, "done"),
    S.REUSED: StatusRow("COMPLETE", "FINISHED", 0, "done"),
    S.PRUNED: StatusRow("PRUNED", "KILLED", 1, "pruned"),
    S.STOPPED: StatusRow("PRUNED", "KILLED", 1, "stopped"),
    S.DIVERGED: StatusRow("FAIL", "FAILED", 3, "failed"),
    S.OOM_RETRIED: StatusRow("FAIL", "FAILED", 3, "failed"),
    S.OOM: StatusRow("FAIL", "FAILED", 3, "failed"),
    S.INVALID: StatusRow("FAIL", "FAILED", 3, "failed"),
    S.DRIVER_LOST: StatusRow("FAIL", "KILLED", 3, "failed"),
    S.FAILED: StatusRow("FAIL", "FAILED", 3, "failed"),
    # PRUNED without a value: the sampler counts it among the worst, so it learns to avoid
    # the region of the space that is over the limits (a FAIL it would ignore)
    S.REJECTED: StatusRow("PRUNED", "FAILED", 4, "rejected"),
}
#: The statuses a worker reports when training itself ended the trial.
ENGINE_FAILURES = frozenset({S.DIVERGED, S.OOM, S.INVALID})


def row(status: TrialStatus | str) -> StatusRow:
    """The table row of ``status`` (stored text accepted)."""
    return TABLE[TrialStatus.parse(status)]


#: A trial that completes at or below chance accuracy plus this margin learned nothing.
CHANCE_MARGIN = 0.02


def chance_level(num_classes: int) -> float:
    """The accuracy at or below which a completed trial counts as diverged."""
    return 1.0 / max(1, num_classes) + CHANCE_MARGIN


def classify(
    result: dict[str, Any] | None,
    error: bool,
    budget_spent: bool | str | None,
    chance: float = 0.0,
) -> tuple[TrialStatus, str | None]:
    """(status, reason) of a trial that Ray has finished, from its last reported result.

    A trial completed when its worker reported ``completed``: it trained to the plan's full
    fidelity. ``error``: Ray gave up on the trial after its retries; ``budget_spent``: the search
    was stopping every trial when it ended (so Ray stopped it, not the scheduler): True when
    the budget ran out, or the reason it stopped early (:attr:`SearchState.stopped_why`);
    ``chance``: a trial that trained to the end at or below this accuracy is ``diverged``.
    """
    if error:
        return S.FAILED, "the trial raised an error (see the Ray logs of the trial)"
    result = result or {}
    reported = TrialStatus.parse(result.get(STATUS))
    # FAILED: the worker's own error; REJECTED: over --max-latency-ms, measured on the worker
    if reported in ENGINE_FAILURES or reported in (S.FAILED, S.REJECTED):
        return reported, str(result.get("reason") or reported.value)
    if VAL_ACC not in result:
        return S.STOPPED, "no report before it ended"
    if reported == S.COMPLETED:
        if float(result[VAL_ACC]) <= chance:
            return S.DIVERGED, f"{VAL_ACC} {float(result[VAL_ACC]):.4f} is no better than chance"
        return S.COMPLETED, None
    if budget_spent:
        return S.STOPPED, budget_spent if isinstance(budget_spent, str) else "the budget ran out"
    return S.PRUNED, f"stopped by the scheduler after {result.get('samples', 0):,} samples"
