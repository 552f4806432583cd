"""Chaos, part 2, the servers: the Optuna database (a PostgreSQL server this test owns) and
the MLflow tracking server are stopped and started again under a running search; MLflow
with authentication refuses bad credentials before any trial (docs/RELIABILITY.md)."""

from __future__ import annotations

import json
import os
import re
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient
from servers import MlflowServer, PrivatePostgres, auth_server, postgres_bin
from test_chaos import SEARCH_LINE, Search
from test_search_e2e import assert_stores_agree

from nas.cli import main

pytestmark = pytest.mark.slow

FAST = ["--epochs", "2", "--grace-epochs", "1"]


@pytest.fixture
def postgres():
    if postgres_bin() is None:
        pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    pg = PrivatePostgres()
    pg.start()
    yield pg
    pg.remove()


def _runs(tracking_uri: str, name: str = "search") -> dict[int, object]:
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return {}
    found = client.search_runs([exp.experiment_id], "tags.`nas.role` = 'trial'", max_results=1000)
    return {int(r.data.tags["nas.trial"]): r for r in found}


def _reported(tracking_uri: str) -> bool:
    client = MlflowClient(tracking_uri)
    return any(
        client.get_metric_history(r.info.run_id, "val_acc") for r in _runs(tracking_uri).values()
    )


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _closed(study: optuna.Study, tracking_uri: str) -> None:
    runs = _runs(tracking_uri)
    assert not [t.number for t in study.trials if t.state.name == "RUNNING"]
    assert not [(n, r.data.tags) for n, r in runs.items() if r.info.status == "RUNNING"]
    assert_stores_agree(study, runs)


def test_the_optuna_database_restarts_mid_search_and_no_trial_is_lost(tmp_path, postgres):
    mlflow_db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    search = Search(tmp_path, "--budget", "40s", *FAST, "--storage", postgres.url)
    search.wait_line(SEARCH_LINE)
    _wait(lambda: _reported(mlflow_db), 120, "a first report")
    postgres.stop()
    time.sleep(6)
    postgres.start()
    assert search.finish() == 0, search.text()[-3000:]
    _closed(optuna.load_study(study_name="search", storage=postgres.url), mlflow_db)


def test_a_database_that_stays_down_ends_with_one_line_and_resume_continues(
    tmp_path, postgres, monkeypatch
):
    monkeypatch.setenv("NAS_DB_PATIENCE_S", "6")
    mlflow_db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    search = Search(tmp_path, "--budget", "40s", *FAST, "--storage", postgres.url)
    search.wait_line(SEARCH_LINE)
    _wait(lambda: _reported(mlflow_db), 120, "a first report")
    postgres.stop()
    assert search.finish() == 2, search.text()[-3000:]
    errors = [line for _, line in search.lines if line.startswith("nas: error:")]
    assert len(errors) == 1 and "did not answer" in errors[0] and "--resume" in errors[0]
    assert "postgres@" not in errors[0]  # never a credential

    postgres.start()
    resumed = Search(tmp_path, "--resume", "--storage", postgres.url)
    assert resumed.finish() == 0, resumed.text()[-3000:]
    _closed(optuna.load_study(study_name="search", storage=postgres.url), mlflow_db)
    saved = json.loads((tmp_path / "search" / "search.json").read_text())
    assert saved["status"] == "finished"


@pytest.fixture
def mlflow_server(tmp_path):
    server = MlflowServer(tmp_path / "mlflow-server")
    server.start()
    yield server
    server.stop()


def test_the_mlflow_server_goes_away_trials_go_on_and_the_spool_is_sent(tmp_path, mlflow_server):
    work = tmp_path / "work"
    # away mid-search and back before the end: the spool is sent on reconnect (the budget
    # leaves room for the server's restart, ~30 s on 2 busy cores)
    search = Search(work, "--budget", "75s", *FAST, "--tracking-uri", mlflow_server.url)
    search.wait_line(SEARCH_LINE)
    _wait(lambda: _reported(mlflow_server.url), 120, "a first report")
    mlflow_server.stop()
    time.sleep(12)
    mlflow_server.start()
    assert search.finish() == 0, search.text()[-3000:]
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{work / 'optuna.db'}")
    _closed(study, mlflow_server.url)
    assert not (work / "search" / "mlflow-spool.jsonl").exists()


def test_an_mlflow_server_away_at_the_end_is_caught_up_by_resume(tmp_path, mlflow_server):
    work = tmp_path / "work"
    search = Search(work, "--budget", "30s", *FAST, "--tracking-uri", mlflow_server.url)
    search.wait_line(SEARCH_LINE)
    _wait(lambda: _reported(mlflow_server.url), 120, "a first report")
    mlflow_server.stop()  # and it stays away until the search has ended
    assert search.finish() == 0, search.text()[-3000:]
    left = [line for _, line in search.lines if "did not answer" in line]
    assert len(left) == 1 and "mlflow-spool.jsonl" in left[0] and "--resume" in left[0]
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{work / 'optuna.db'}")
    assert all(t.state.name != "RUNNING" for t in study.trials)  # Optuna closed everything

    mlflow_server.start()
    resumed = Search(work, "--resume")
    assert resumed.finish() == 0, resumed.text()[-3000:]
    _closed(optuna.load_study(study_name="search", storage=f"sqlite:///{work / 'optuna.db'}"),
            mlflow_server.url)  # fmt: skip
    assert not (work / "search" / "mlflow-spool.jsonl").exists()


@pytest.fixture
def auth_server_fixture(tmp_path):
    """``mlflow server --app-name basic-auth`` as deploy/ configures it: (server, admin pw)."""
    server, password = auth_server(tmp_path)
    yield server, password
    server.stop()


def test_mlflow_with_authentication_refuses_bad_credentials_before_any_trial(
    tmp_path, auth_server_fixture, monkeypatch, capsys
):
    from mlflow.server import get_app_client

    server, admin_password = auth_server_fixture
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", admin_password)
    reader_password = os.urandom(12).hex()
    get_app_client("basic-auth", tracking_uri=server.url).create_user("reader", reader_password)
    MlflowClient(server.url).create_experiment("search")  # readable by all (READ default)

    for user, password, code in (("admin", "wrong", "401"), ("reader", reader_password, "403")):
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        work = tmp_path / f"work-{user}"
        exit_code = main(["search", "--budget", "1trials", "--workdir", str(work),
                          "--tracking-uri", server.url])  # fmt: skip
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert exit_code == 2 and len(lines) == 1, lines
        assert f"({code})" in lines[0] and re.search(r"MLFLOW_TRACKING|permission", lines[0])
        assert not (work / "optuna.db").exists() and not (work / "search" / "search.json").exists()

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", admin_password)
    exp = MlflowClient(server.url).get_experiment_by_name("search")
    assert not MlflowClient(server.url).search_runs([exp.experiment_id])  # nothing half-written
