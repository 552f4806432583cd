"""No credential leaves (issue #26), end to end on real servers: a PostgreSQL server that
asks for a password (SCRAM) holds the study, ``mlflow server --app-name basic-auth`` the
runs. A search, a retrain and an export run with the password in ``--storage`` and in
``$MLFLOW_TRACKING_PASSWORD``; then every console line, every file under the workdir and the
checkpoint path, the MLflow server's artifact store and every MLflow param, tag, artifact
and dataset input are searched for either password: zero hits."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest
from mlflow.tracking import MlflowClient
from servers import PrivatePostgres, add_user, auth_server, nas, postgres_bin

pytestmark = pytest.mark.slow

FAST = ["--epochs", "2", "--grace-epochs", "1", "--warm-start", "none", "--seed", "3"]


def hits(secrets: list[str], root: Path) -> list[str]:
    """Files under ``root`` whose bytes hold a secret (raw or percent-encoded)."""
    forms = [f.encode() for s in secrets for f in {s, quote(s, safe="")}]
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [str(path) for form in forms if form in data]
    return found


def mlflow_text(client: MlflowClient, tmp: Path) -> str:
    """Everything MLflow holds of every experiment: params, tags, metrics' keys, dataset
    inputs, registered model versions and every artifact's content."""
    parts = []
    for exp in client.search_experiments():
        parts.append(repr(exp))
        for run in client.search_runs([exp.experiment_id], max_results=1000):
            parts += [repr(run.data.params), repr(run.data.tags), repr(run.inputs)]
            out = tmp / run.info.run_id
            if client.list_artifacts(run.info.run_id):
                client.download_artifacts(run.info.run_id, "", str(out))
                parts += [p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file()]
    for version in client.search_model_versions():
        parts.append(repr(version))
    return "\n".join(parts)


def test_no_password_leaves_a_search_a_retrain_or_an_export(tmp_path, monkeypatch):
    if postgres_bin() is None:
        pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    pg_password = "Pg-" + os.urandom(9).hex()
    pg = PrivatePostgres(password=pg_password)
    pg.start()
    server, admin_password = auth_server(tmp_path / "mlflow")
    try:
        ml_password = add_user(server, admin_password, "alice")
        env = {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": ml_password}
        work = tmp_path / "work"
        common = ["--workdir", str(work)]
        searched = nas(env, "search", *common, "--budget", "2trials", *FAST,
                       "--storage", pg.url, "--tracking-uri", server.url)  # fmt: skip
        assert searched.returncode == 0, searched.stderr[-3000:]
        assert "postgres:***@" in (work / "search" / "search.json").read_text()

        # a resume without the password is one line naming where to give it
        lost = nas(env, "search", "--resume", *common, "--budget", "3trials")
        err = [line for line in lost.stderr.splitlines() if line.strip()]
        assert lost.returncode == 2 and len(err) == 1 and "NAS_STORAGE" in err[0], err

        with_env = {**env, "NAS_STORAGE": pg.url}  # as deploy/ passes it from a Secret
        retrained = nas(with_env, "retrain", *common, "--best", "--epochs", "2")
        assert retrained.returncode == 0, retrained.stderr[-3000:]
        exported = nas(with_env, "export", *common, "--best", "--format", "onnx")
        assert exported.returncode == 0, exported.stderr[-3000:]
        board = nas(with_env, "leaderboard", *common, "--storage", pg.url, "--json")
        assert board.returncode == 0, board.stderr[-3000:]

        secrets = [pg_password, ml_password]
        console = "".join(p.stdout + p.stderr for p in (searched, lost, retrained, exported, board))
        assert not [s for s in secrets if s in console or quote(s, safe="") in console]
        assert hits(secrets, work) == []  # workdir, Ray's checkpoint path, retrain, exports
        assert hits(secrets, server.root / "artifacts") == []
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", admin_password)
        everything = mlflow_text(MlflowClient(server.url), tmp_path / "downloaded")
        assert "search_config.json" in everything or "postgres:***@" in everything
        assert not [s for s in secrets if s in everything or quote(s, safe="") in everything]
    finally:
        server.stop()
        pg.remove()
