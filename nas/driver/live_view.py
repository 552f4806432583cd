"""The live view: one status line of a running search, drawn from its
:class:`~nas.study.events.SearchState` (elapsed / budget, trials done / running / pruned / failed,
the best value so far). It subscribes to the state's events; it imports neither Ray nor a
global.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from nas.core.budget import format_seconds
from nas.study.events import Progress, SearchState
from nas.study.records import format_count


class LiveView:
    """On a terminal the line is redrawn in place about once a second; otherwise (logs, CI)
    a line is printed every ``log_every`` seconds."""

    def __init__(
        self,
        state: SearchState,
        stream: IO[str] | None = None,
        log_every: float = 15.0,
        trials_before: int = 0,
    ) -> None:
        self.state = state
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.log_every = log_every
        self.trials_before = trials_before
        self._last_draw = 0.0

    def handle(self, event: Any) -> None:
        """Redraw on Ray's scheduling steps (the counters are the state's)."""
        if isinstance(event, Progress):
            now = time.monotonic()
            if now - self._last_draw >= (1.0 if self.tty else self.log_every):
                self._last_draw = now
                self.draw()

    def line(self) -> str:
        s = self.state
        c = s.counts
        if s.budget.kind == "trials":
            progress = f"{self.trials_before + s.trials_started}/{int(s.budget.amount)} trials"
        else:
            progress = f"{s.budget.describe(s.spent)} / {s.budget.describe()}"
        best = "-"
        if s.best is not None:
            size = f", {format_count(s.best_params)} params" if s.best_params else ""
            best = f"{s.best:.4f} (trial {s.best_trial}{size})"
        return (
            f"[{format_seconds(s.wall_seconds)}] {progress} | done {c.get('done', 0)} "
            f"running {s.running} pruned {c.get('pruned', 0)} stopped {c.get('stopped', 0)} "
            f"failed {c.get('failed', 0)} rejected {c.get('rejected', 0)} | best {s.metric} {best}"
        )

    def draw(self, final: bool = False) -> None:
        text = self.line()
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
