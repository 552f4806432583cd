"""Durable accounting of a running search, and a guard against a full disk.

The budget spent is written to ``search.json`` (atomically) every
:data:`ACCOUNTING_INTERVAL_S` seconds and at every trial end, so a driver killed at any
moment loses at most one interval of accounting: ``nas search --resume`` then counts what
was spent (docs/RELIABILITY.md).

The guard watches the free space where the search writes (the workdir, and the checkpoint
location when it is a local path). A small reserve file is kept in the workdir; when free
space falls under :data:`MIN_FREE_BYTES` (or a write fails with "no space left"), the
reserve is deleted, so that the stores can still record how the search ended, and the
search stops with one line saying what to free; ``--resume`` continues it.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import time
from pathlib import Path
from typing import Any

from nas.core.config import SearchConfig, save_state
from nas.core.errors import causes
from nas.study.events import Progress, SearchState, TrialEnded, TrialNeverRan, TrialReused

#: Seconds between two saves of the budget spent (also saved at every trial end).
ACCOUNTING_INTERVAL_S = 1.0
#: The search stops when less than this is free where it writes.
MIN_FREE_BYTES = 32 * 2**20
#: Kept in the workdir while a search runs, deleted to make room for its last writes.
RESERVE_BYTES = 16 * 2**20
RESERVE_FILE = ".nas-disk-reserve"


class Ledger:
    """Subscriber of a search's events that saves the budget spent and guards the disk."""

    def __init__(self, cfg: SearchConfig, state: SearchState, plan: dict[str, Any]) -> None:
        self.cfg = cfg
        self.state = state
        self.plan = plan
        self.reserve = cfg.workdir / RESERVE_FILE
        self.watched = [cfg.workdir]
        if "://" not in cfg.checkpoint_root:
            self.watched.append(Path(cfg.checkpoint_root))
        self._saved = 0.0
        self._make_reserve()

    def handle(self, event: Any) -> None:
        """Save on trial ends and, on Ray's scheduling steps, once an interval has passed."""
        now = time.monotonic()
        if isinstance(event, TrialEnded | TrialReused | TrialNeverRan):
            self.save()
        elif isinstance(event, Progress) and now - self._saved >= ACCOUNTING_INTERVAL_S:
            self.save()
            self.check_disk()

    def save(self, status: str = "running") -> None:
        """Write the budget spent to search.json; a full disk stops the search."""
        self._saved = time.monotonic()
        try:
            save_state(self.cfg, self.state.spent, status, self.plan)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            self.disk_full(self.cfg.workdir)

    def check_disk(self) -> None:
        """Stop the search when a watched location is (almost) full."""
        for path in self.watched:
            with contextlib.suppress(OSError):  # not created yet
                if shutil.disk_usage(path).free < MIN_FREE_BYTES:
                    self.disk_full(path)
                    return

    def disk_full(self, path: Path) -> None:
        """Free the reserve and stop the search, saying what to do."""
        if self.state.stop_reason is None:
            with contextlib.suppress(OSError):
                self.reserve.unlink()
            free = _free_mb(path)
            self.state.stop_reason = (
                f"the disk of {path} is full ({free} MB free, {MIN_FREE_BYTES >> 20} MB "
                f"needed): free space there, then continue with nas search --resume "
                f"--workdir {self.cfg.workdir} --name {self.cfg.name}"
            )
            with contextlib.suppress(OSError):  # the reserve made room for this
                save_state(self.cfg, self.state.spent, "stopped", self.plan)

    def close(self) -> None:
        """The search ended: the reserve is not needed any more."""
        with contextlib.suppress(OSError):
            self.reserve.unlink()

    def _make_reserve(self) -> None:
        try:
            with open(self.reserve, "wb") as f:
                f.truncate(0)
                chunk = b"\0" * 2**20
                for _ in range(RESERVE_BYTES >> 20):
                    f.write(chunk)
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.reserve.unlink()
            if exc.errno != errno.ENOSPC:
                raise
            self.disk_full(self.cfg.workdir)


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says a disk is full: ENOSPC, or SQLite's
    "database or disk is full" wrapped by SQLAlchemy, Optuna or MLflow."""
    for cause in causes(exc):
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return True
        text = str(cause)
        if "database or disk is full" in text or "No space left on device" in text:
            return True
    return False


def _free_mb(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free >> 20
    except OSError:
        return 0
