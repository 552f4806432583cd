"""Ray Tune callbacks of the driver: MLflow runs per trial, and the live view.

Both run in the driver process (workers never import MLflow) and hold no state of their
own: they act on the current :class:`~nas.runtime.SearchRuntime`, so the copies Ray restores
on ``--resume`` work like the originals.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from ray.tune import Callback

from nas.budget import format_seconds
from nas.runtime import SearchRuntime, current
from nas.trial_status import classify


class TrackingCallback(Callback):
    """Mirrors every Ray trial into an MLflow run nested under the search run."""

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        rt = current()
        if rt and rt.tracker:
            cfg = trial.config
            rt.tracker.trial_run(int(cfg["trial_number"]), cfg, ray_trial_id=trial.trial_id)
        if rt and rt.live:
            rt.live.started += 1

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        rt = current()
        if rt and rt.tracker:
            rt.tracker.log_epoch(int(trial.config["trial_number"]), result)
        if rt and rt.live:
            rt.live.on_result(result)

    def _finish(self, trial: Any, error: bool) -> None:
        rt = current()
        if rt is None:
            return
        status, reason = classify(trial.last_result, error, rt.max_epochs)
        if rt.tracker:
            extra = (
                {"error_file": trial.error_file}
                if error and getattr(trial, "error_file", None)
                else None
            )
            rt.tracker.end_trial(int(trial.config["trial_number"]), status, reason, extra)
        if rt.live:
            rt.live.on_end(status)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, error=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, error=True)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        rt = current()
        if rt and rt.live:
            rt.live.tick(sum(1 for t in trials if t.status == "RUNNING"))


class LiveView:
    """One status line: elapsed / budget, trials done / running / pruned / failed, best so far.

    On a terminal the line is redrawn in place about once a second; otherwise (logs, CI) a
    line is printed every ``log_every`` seconds.
    """

    def __init__(
        self,
        runtime: SearchRuntime,
        metric: str = "val_acc",
        stream: IO[str] | None = None,
        log_every: float = 15.0,
        trials_before: int = 0,
        best_before: float | None = None,
    ) -> None:
        self.rt = runtime
        self.metric = metric
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.log_every = log_every
        self.counts: dict[str, int] = {}
        self.best = best_before
        self.running = 0
        self.started = 0
        self.trials_before = trials_before
        self._last_draw = 0.0

    def on_result(self, result: dict[str, Any]) -> None:
        value = result.get(self.metric)
        if (
            isinstance(value, int | float)
            and value == value
            and result.get("status") in ("running", "completed")
        ):
            self.best = value if self.best is None else max(self.best, value)

    def on_end(self, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1

    def tick(self, running: int) -> None:
        self.running = running
        now = time.monotonic()
        if now - self._last_draw >= (1.0 if self.tty else self.log_every):
            self._last_draw = now
            self.draw()

    def line(self) -> str:
        c = self.counts
        budget = self.rt.budget
        done = c.get("completed", 0) + c.get("duplicate", 0)
        failed = sum(c.get(s, 0) for s in ("failed", "diverged", "oom", "invalid"))
        if budget.kind == "trials":
            progress = f"{self.trials_before + self.started}/{int(budget.amount)} trials"
        else:
            progress = f"{budget.describe(self.rt.spent)} / {budget.describe()}"
        best = f"{self.best:.4f}" if self.best is not None else "-"
        return (
            f"[{format_seconds(self.rt.wall_seconds)}] {progress} | done {done} running {self.running} "
            f"pruned {c.get('pruned', 0)} failed {failed} rejected {c.get('rejected', 0)} | "
            f"best {self.metric} {best}"
        )

    def draw(self, final: bool = False) -> None:
        text = self.line()
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
