"""The statuses a trial passes through and ends in: one vocabulary for the whole project.

The engine ends a run as ``completed``, ``diverged``, ``oom`` or ``invalid``; the search adds
the statuses only the driver can know (rejected before a worker, reused, pruned by the
scheduler, stopped by the budget, driver lost, failed). How each status maps to Optuna's
trial state, MLflow's run status, the leaderboard and the live view is stated once, in
``nas.study.status_table``; this module only names them, so the engine can use them without the driver.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["TrialStatus"]


class TrialStatus(str, Enum):
    """What a trial is doing or how it ended (the value is what stores and reports hold)."""

    RUNNING = "running"  # reporting epochs
    # over a limit, or a spec the catalog refuses: never trained (never reached a worker,
    # but for --max-latency-ms: the worker measures the latency and trains nothing)
    REJECTED = "rejected"
    REUSED = "reused"  # same architecture and settings as an earlier trial: its result, not trained
    COMPLETED = "completed"  # trained to its full fidelity
    PRUNED = "pruned"  # stopped early by the scheduler (ASHA / Hyperband)
    STOPPED = "stopped"  # still running when the budget ran out
    DIVERGED = "diverged"  # NaN / Inf loss, or no better than chance
    OOM_RETRIED = "oom_retried"  # out of memory, tried again with half the batch size
    OOM = "oom"  # out of device memory
    INVALID = "invalid"  # the spec could not run on the worker
    DRIVER_LOST = "driver_lost"  # running when the driver died; closed on --resume
    FAILED = "failed"  # raised an error (after Ray's retries)

    @classmethod
    def parse(cls, value: str | TrialStatus | None) -> TrialStatus | None:
        """A status from its stored text; ``duplicate`` (studies before 0.2) is ``reused``."""
        if value is None or isinstance(value, cls):
            return value
        return cls(_ALIASES.get(value, value))

    def __str__(self) -> str:
        return self.value


_ALIASES = {"duplicate": "reused", "interrupted": "driver_lost"}
