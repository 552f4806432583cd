"""A team on shared servers: several people's searches at once against one PostgreSQL
database (password auth) and one MLflow server with basic auth, each user's experiments
theirs (``default_permission = NO_PERMISSIONS``). Used by ``tests/test_shared_servers.py``
and by ``benchmarks/shared_servers.py``, which also runs one search alone to compare."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from servers import MlflowServer, PrivatePostgres, add_user, auth_server

#: Every search of the team: small, fixed fidelity, one trial at a time each.
SEARCH_ARGS = ["--budget", "3trials", "--epochs", "2", "--grace-epochs", "1",
               "--warm-start", "none", "--max-concurrent", "1"]  # fmt: skip


@dataclass
class Team:
    """The servers and each user's MLflow password; ``stop()`` tears them down."""

    root: Path
    pg: PrivatePostgres
    server: MlflowServer
    admin_password: str
    passwords: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, root: Path, users: tuple[str, ...] = ("alice", "bob")) -> Team:
        pg = PrivatePostgres(password="Team-" + os.urandom(9).hex())
        pg.start()
        server, admin_password = auth_server(root / "mlflow", "NO_PERMISSIONS")
        team = cls(root, pg, server, admin_password)
        for user in users:
            team.passwords[user] = add_user(server, admin_password, user)
        return team

    def env(self, user: str) -> dict[str, str]:
        """What a user's shell has: their MLflow login and the team's database URL."""
        return {
            "MLFLOW_TRACKING_USERNAME": user,
            "MLFLOW_TRACKING_PASSWORD": self.passwords.get(user, self.admin_password),
            "MLFLOW_TRACKING_URI": self.server.url,
            "NAS_STORAGE": self.pg.url,
        }

    def search(self, user: str, name: str, *extra: str) -> Running:
        """Start ``nas search --name NAME`` as ``user`` in its own workdir."""
        work = self.root / f"work-{name}"
        argv = [sys.executable, "-m", "nas", "search", "--workdir", str(work), "--name", name,
                *SEARCH_ARGS, *extra]  # fmt: skip
        proc = subprocess.Popen(
            argv,
            env={**os.environ, **self.env(user)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return Running(user, name, work, proc, time.monotonic())

    def stop(self) -> None:
        try:
            self.server.stop()
        finally:
            self.pg.remove()


@dataclass
class Running:
    """One search process; ``wait()`` returns (exit code, stderr) and its wall time."""

    user: str
    name: str
    workdir: Path
    proc: subprocess.Popen
    started: float
    seconds: float = 0.0
    stderr: str = ""

    def wait(self, timeout: float = 900) -> int:
        _, self.stderr = self.proc.communicate(timeout=timeout)
        self.seconds = time.monotonic() - self.started
        return self.proc.returncode


def trials_per_minute(study) -> tuple[int, float]:
    """(trials that reached a worker, those per minute from the first start to the last end)."""
    ran = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.datetime_start and t.datetime_complete
        and t.user_attrs.get("status") not in ("rejected", "reused")
    ]  # fmt: skip
    if not ran:
        return 0, 0.0
    span = max(t.datetime_complete for t in ran) - min(t.datetime_start for t in ran)
    return len(ran), 60.0 * len(ran) / max(span.total_seconds(), 1e-9)
