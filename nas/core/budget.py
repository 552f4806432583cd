"""Search budgets: wall clock, trial count, or device hours.

``90s`` / ``30m`` / ``2h`` / ``1h30m``  wall clock for the whole search
``50trials``                            number of trials (sampled architectures)
``4gpu-h`` / ``2cpu-h`` / ``0.5gpu-h``  device hours: each trial's elapsed time times the
                                        devices (GPUs or CPUs) it holds, summed over trials
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from nas.core.errors import UsageError

BudgetKind = Literal["wall", "trials", "device"]

_ACCEPTED = "expected a wall clock (90s, 30m, 2h, 1h30m), a trial count (50trials) or device hours (4gpu-h, 2cpu-h)"
_WALL_PART = re.compile(r"(\d+(?:\.\d+)?)(s|m|h)")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Budget:
    """A parsed budget. ``amount`` is seconds (wall), trials, or device-seconds (device)."""

    kind: BudgetKind
    amount: float
    device: Literal["gpu", "cpu"] | None = None
    text: str = ""

    @property
    def trials(self) -> int | None:
        """The trial cap, or None when the budget is not a trial count."""
        return int(self.amount) if self.kind == "trials" else None

    def remaining(self, spent: float) -> float:
        """What is left after ``spent`` (same unit as ``amount``), never negative."""
        return max(0.0, self.amount - spent)

    def describe(self, value: float | None = None) -> str:
        """Human form of ``value`` (default: the whole budget) in this budget's unit."""
        v = self.amount if value is None else value
        if self.kind == "trials":
            return f"{int(v)} trials"
        if self.kind == "device":
            return f"{v / 3600:.2f} {self.device}-h"
        return format_seconds(v)


def format_seconds(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``3725`` -> ``1h02m05s``."""
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m{sec:02d}s"
    if m:
        return f"{m}m{sec:02d}s"
    return f"{sec}s"


def parse_budget(text: str) -> Budget:
    """Parse a ``--budget`` value; raise :class:`UsageError` naming it when it is not one."""
    raw = str(text).strip().lower().replace(" ", "")
    bad = UsageError(f"--budget {text!r}: {_ACCEPTED}")
    if not raw or raw.startswith("-"):
        raise bad
    m = re.fullmatch(r"(\d+)trials?", raw)
    if m:
        n = int(m.group(1))
        if n < 1:
            raise UsageError(f"--budget {text!r}: a trial budget needs at least 1 trial")
        return Budget("trials", float(n), text=text)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(gpu|cpu)-?h", raw)
    if m:
        hours = float(m.group(1))
        if not hours > 0 or not math.isfinite(hours):
            raise UsageError(f"--budget {text!r}: device hours must be > 0")
        return Budget("device", hours * 3600.0, device=m.group(2), text=text)  # type: ignore[arg-type]
    parts = _WALL_PART.findall(raw)
    if parts and "".join(n + u for n, u in parts) == raw:
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
        if seconds <= 0:
            raise UsageError(f"--budget {text!r}: a wall-clock budget must be > 0")
        return Budget("wall", seconds, text=text)
    raise bad
