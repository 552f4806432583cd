"""A team on shared servers: one search alone, then four at once by two users, against one
PostgreSQL database (password auth) and one MLflow server with basic auth, on this machine.

Prints each search's wall time, its trials, and its trials per minute (from its first
trial's start to its last trial's end, Optuna's timestamps), for the one alone and the four
together, with the four's wall time. The four-search case is also a test
(``tests/test_shared_servers.py``); this adds the search alone, in the same command.

    python benchmarks/shared_servers.py
"""

from __future__ import annotations

import platform
import sys
import tempfile
import time
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from shared_team import SEARCH_ARGS, Team, trials_per_minute  # noqa: E402

FOUR = (("alice", "alice-a"), ("alice", "alice-b"), ("bob", "bob-a"), ("bob", "bob-b"))


def _row(team: Team, running) -> str:
    study = optuna.load_study(study_name=running.name, storage=team.pg.url)
    n, rate = trials_per_minute(study)
    return f"| {running.name} | {running.seconds:.0f} | {n} | {rate:.2f} |"


def main() -> int:
    print(f"machine: {platform.machine()}, {platform.python_version()}, search: {SEARCH_ARGS}")
    with tempfile.TemporaryDirectory(prefix="nas-team-") as tmp:
        team = Team.start(Path(tmp))
        try:
            alone = team.search("alice", "alone")
            assert alone.wait() == 0, alone.stderr[-2000:]
            print("| search | wall s | trials | trials / min |\n| --- | ---: | ---: | ---: |")
            print(_row(team, alone))
            t0 = time.monotonic()
            running = [team.search(user, name) for user, name in FOUR]
            codes = [r.wait() for r in running]
            wall = time.monotonic() - t0
            assert codes == [0, 0, 0, 0], [r.stderr[-2000:] for r in running]
            for r in running:
                print(_row(team, r))
            print(f"four at once: {wall:.0f} s wall (one alone: {alone.seconds:.0f} s)")
        finally:
            team.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
