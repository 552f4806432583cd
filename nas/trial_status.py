"""One vocabulary for how a trial ended, shared by the Optuna study and the MLflow runs.

Both stores classify a finished Ray trial with :func:`classify`, so they always agree.
"""

from __future__ import annotations

from typing import Any

# status -> (Optuna TrialState name, MLflow RunStatus name)
STATES: dict[str, tuple[str, str]] = {
    "completed": ("COMPLETE", "FINISHED"),  # trained for every epoch of the fidelity
    "duplicate": ("COMPLETE", "FINISHED"),  # same architecture and settings as an earlier trial
    "pruned": ("PRUNED", "FINISHED"),  # stopped early by the scheduler (ASHA / Hyperband)
    "stopped": ("PRUNED", "KILLED"),  # still running when the budget ran out
    "failed": ("FAIL", "FAILED"),  # raised an error (after Ray's retries)
    "diverged": ("FAIL", "FAILED"),  # NaN / Inf loss
    "oom": ("FAIL", "FAILED"),  # out of device memory
    "invalid": ("FAIL", "FAILED"),  # the spec could not run
    "rejected": ("FAIL", "FAILED"),  # over --max-params / --max-macs: never reached a worker
}
FAILURE_STATUSES = ("diverged", "oom", "invalid")


def budget_spent() -> bool:
    """True once the budget stopper of the search in this process has ended it."""
    from nas.runtime import current

    rt = current()
    return rt is not None and rt.budget_spent.is_set()


def classify(result: dict[str, Any] | None, error: bool, max_epochs: int) -> tuple[str, str | None]:
    """(status, reason) of a finished Ray trial from its last result."""
    if error:
        return "failed", "the trial raised an error (see the Ray logs of the trial)"
    result = result or {}
    status = result.get("status")
    if status in FAILURE_STATUSES:
        return status, str(result.get("reason") or status)
    if not result or "val_acc" not in result:
        return "stopped", "no epoch finished"
    if int(result.get("epoch", 0)) >= max_epochs:
        return "completed", None
    if budget_spent():
        return "stopped", "the budget ran out"
    return "pruned", f"stopped by the scheduler after epoch {result.get('epoch')}"
