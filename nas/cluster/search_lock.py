"""One driver per search: ``<workdir>/<name>/search.lock``, held (``flock``) while a search
runs. A second ``nas search`` of the same workdir and name is refused with one line
before it writes anything; the lock goes with its process, so a killed driver never
leaves a stale one and ``--resume`` can follow at once.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import IO

from nas.core.errors import UsageError

LOCK_FILE = "search.lock"

_held: dict[Path, IO[str]] = {}
_made: dict[Path, list[Path]] = {}  # lock file -> folders acquire() created for it


def acquire(study_dir: Path, name: str) -> None:
    """Hold the lock of ``study_dir`` in this process (again: a no-op), or raise
    :class:`UsageError` naming the process that holds it."""
    path = (study_dir / LOCK_FILE).resolve()
    if path in _held:
        return
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UsageError(
            f"--name {name!r}: a search of that name is running in {str(study_dir.parent)!r} "
            f"({holder}); wait for it to end, or pick another --name or --workdir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    _held[path] = handle
    _made[path] = missing


def release(study_dir: Path) -> None:
    """Let the lock of ``study_dir`` go (the search ended)."""
    path = (study_dir / LOCK_FILE).resolve()
    handle = _held.pop(path, None)
    _made.pop(path, None)
    if handle is not None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def abandon(study_dir: Path) -> None:
    """Release the lock of a search that was refused before it wrote anything, and remove
    the lock file and the folders :func:`acquire` made for it: nothing is left behind."""
    path = (study_dir / LOCK_FILE).resolve()
    made = _made.get(path, [])
    release(study_dir)
    if made:
        path.unlink(missing_ok=True)
        for folder in made:  # innermost first
            try:
                folder.rmdir()
            except OSError:  # something else wrote there meanwhile: keep it
                break
