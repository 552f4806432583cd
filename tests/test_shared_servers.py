"""What a team does every day (issue #26): four searches started at once by two users
against one PostgreSQL database and one MLflow server with basic auth all finish; each study
and its MLflow experiment agree trial by trial; each user's experiments are theirs (the
other reads one only where granted); a user without permission gets one line (403) naming
the experiment and writes nothing; ``nas ui`` and the MLflow UI answer while they run."""

from __future__ import annotations

import base64
import time
import urllib.request

import optuna
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from servers import nas, postgres_bin
from shared_team import Team, trials_per_minute
from test_search_e2e import assert_stores_agree

pytestmark = pytest.mark.slow

SEARCHES = (("alice", "alice-a"), ("alice", "alice-b"), ("bob", "bob-a"), ("bob", "bob-b"))


def _as(team: Team, user: str, monkeypatch) -> MlflowClient:
    for key, value in team.env(user).items():
        monkeypatch.setenv(key, value)
    return MlflowClient(team.server.url)


def _ui_answers(team: Team, user: str) -> bool:
    login = base64.b64encode(f"{user}:{team.passwords[user]}".encode()).decode()
    request = urllib.request.Request(team.server.url, headers={"Authorization": f"Basic {login}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status == 200 and b"<html" in response.read().lower()


def _readable(client: MlflowClient, name: str) -> bool:
    """True once ``name`` exists and its creator's permission is recorded (the server
    answers 403 for the moment between the two)."""
    try:
        return client.get_experiment_by_name(name) is not None
    except MlflowException:
        return False


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_four_searches_of_two_users_share_one_database_and_one_tracking_server(
    tmp_path, monkeypatch
):
    if postgres_bin() is None:
        pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    team = Team.start(tmp_path)
    try:
        t0 = time.monotonic()
        running = [team.search(user, name) for user, name in SEARCHES]
        alice = _as(team, "alice", monkeypatch)
        _wait(lambda: _readable(alice, "alice-a"), 300, "alice's first experiment")
        ended = [(r.name, r.wait()) for r in running if r.proc.poll() is not None]
        assert not ended, (ended, [r.stderr[-2000:] for r in running if r.stderr])  # running:
        assert _ui_answers(team, "alice")
        ui = nas(team.env("alice"), "ui", "--tracking-uri", team.server.url)
        assert ui.returncode == 0, ui.stderr[-2000:]
        codes = [r.wait() for r in running]
        wall = time.monotonic() - t0
        assert codes == [0, 0, 0, 0], [r.stderr[-2000:] for r in running]

        admin = _as(team, "admin", monkeypatch)
        for r in running:
            study = optuna.load_study(study_name=r.name, storage=team.pg.url)
            exp = admin.get_experiment_by_name(r.name)
            found = admin.search_runs([exp.experiment_id], "tags.`nas.role` = 'trial'")
            assert_stores_agree(study, {int(run.data.tags["nas.trial"]): run for run in found})
            n, rate = trials_per_minute(study)
            assert n >= 3
            print(f"{r.name}: {n} trials, {rate:.1f} per minute, {r.seconds:.0f} s")
        print(f"four searches at once: {wall:.0f} s wall")

        # each user's experiments are theirs; bob reads alice-b only once it is granted
        from mlflow.server import get_app_client

        bob = _as(team, "bob", monkeypatch)
        for name in ("alice-a", "alice-b"):
            with pytest.raises(MlflowException, match="PERMISSION_DENIED|403"):
                bob.get_experiment_by_name(name)
        _as(team, "admin", monkeypatch)
        alice_b = admin.get_experiment_by_name("alice-b").experiment_id
        get_app_client("basic-auth", tracking_uri=team.server.url).grant_user_permission(
            "bob", "experiment", alice_b, "READ"
        )
        bob = _as(team, "bob", monkeypatch)
        assert bob.search_runs([alice_b])  # granted: readable
        with pytest.raises(MlflowException, match="PERMISSION_DENIED|403"):
            bob.get_experiment_by_name("alice-a")

        # bob may not write into alice's experiment: one line, nothing written
        work = tmp_path / "bob-into-alice"
        env = {**team.env("bob"), "NAS_STORAGE": f"sqlite:///{work / 'optuna.db'}"}
        refused = nas(env, "search", "--workdir", str(work), "--name", "alice-b",
                      "--budget", "1trials")  # fmt: skip
        lines = [line for line in refused.stderr.splitlines() if line.strip()]
        assert refused.returncode == 2 and len(lines) == 1, lines
        assert "(403)" in lines[0] and "'alice-b'" in lines[0] and "bob" in lines[0]
        assert not (work / "optuna.db").exists() and not (work / "alice-b").exists()
    finally:
        team.stop()
