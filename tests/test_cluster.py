"""A real multi-node Ray cluster on this machine: a head and a worker node, each a host of its
own (a network namespace on a bridge), Optuna on a PostgreSQL server the test owns, MLflow
on an ``mlflow server --serve-artifacts``. The worker node sees neither the checkout, nor
the data, nor the driver's workdir (empty tmpfs over them in its own mount namespace): the
code reaches it through Ray's runtime_env, the data through the object store, and trial
checkpoints go to a ``--checkpoint-uri`` that both nodes mount. The driver runs on the head
node, as a RayJob entrypoint does.
"""

from __future__ import annotations

import subprocess
import sys
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient
from servers import NamespaceCluster, namespaces_unavailable, postgres_bin, two_node_cluster
from test_search_e2e import assert_stores_agree

pytestmark = pytest.mark.slow

NAS = [sys.executable, "-m", "nas"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, shared_data):
    """(cluster, postgres, mlflow server, driver workdir, dataset path), torn down after."""
    reason = namespaces_unavailable()
    if reason:
        pytest.skip(reason)
    if postgres_bin() is None:
        pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    workdir = tmp_path_factory.mktemp("driver")
    with two_node_cluster(shared_data, workdir) as (c, pg, mlflow):
        yield c, pg, mlflow, workdir, shared_data / "ucr" / "GunPoint"


def _search(c: NamespaceCluster, *argv: str, env: dict[str, str] | None = None):
    return c.run(
        "head",
        [*NAS, "search", *argv],
        env=c.env if env is None else env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_search_runs_on_both_nodes_then_retrains_and_exports(cluster):
    c, pg, mlflow, workdir, dataset = cluster
    checkpoints = c.root / "shared-checkpoints"
    done = _search(
        c,
        "--budget", "6trials", "--epochs", "2", "--grace-epochs", "1",
        "--dataset", str(dataset), "--workdir", str(workdir), "--name", "cluster",
        "--storage", pg.url, "--tracking-uri", mlflow.url,
        "--ray-address", c.ray_address, "--checkpoint-uri", str(checkpoints),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    study = optuna.load_study(study_name="cluster", storage=pg.url)
    client = MlflowClient(mlflow.url)
    exp = client.get_experiment_by_name("cluster")
    runs = {
        int(r.data.tags["nas.trial"]): r
        for r in client.search_runs(
            [exp.experiment_id], filter_string="tags.`nas.role` = 'trial'", max_results=1000
        )
    }
    assert_stores_agree(study, runs)
    nodes = {r.data.tags.get("nas.node") for r in runs.values() if "nas.node" in r.data.tags}
    assert nodes == {c.ip("head"), c.ip("w1")}, nodes
    # Ray's experiment and the trials' checkpoints are on the shared storage, not the workdir
    assert (checkpoints / "cluster").is_dir()
    assert not (workdir / "ray").exists()

    best = ["--workdir", str(workdir), "--name", "cluster", "--best"]
    for argv in (["retrain", *best, "--epochs", "3"], ["export", *best, "--format", "onnx"]):
        done = subprocess.run([*NAS, *argv], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    assert client.search_model_versions("name = 'nas-cluster'"), "the export was not registered"


def test_a_node_without_the_checkpoint_storage_stops_the_search_before_any_write(cluster):
    c, pg, mlflow, workdir, dataset = cluster
    # the driver's workdir is an empty tmpfs on the worker node: it cannot see the probe
    private = workdir / "not-shared"
    done = _search(
        c,
        "--budget", "2trials", "--dataset", str(dataset), "--workdir", str(workdir),
        "--name", "unshared", "--storage", pg.url, "--tracking-uri", mlflow.url,
        "--ray-address", c.ray_address, "--checkpoint-uri", str(private),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    lines = _error_lines(done.stderr)
    assert len(lines) == 1, lines
    assert c.ip("w1") in lines[0] and str(private) in lines[0]
    assert "unshared" not in optuna.get_all_study_names(storage=pg.url)
    assert MlflowClient(mlflow.url).get_experiment_by_name("unshared") is None
    assert not (workdir / "unshared").exists()


def test_a_driver_without_the_token_is_told_what_to_set(cluster):
    c, pg, mlflow, workdir, dataset = cluster
    env = {k: v for k, v in c.env.items() if not k.startswith("RAY_AUTH")}
    done = _search(
        c,
        "--budget", "2trials", "--dataset", str(dataset), "--workdir", str(workdir),
        "--name", "no-token", "--storage", pg.url, "--tracking-uri", mlflow.url,
        "--ray-address", c.ray_address, "--checkpoint-uri", str(c.root / "shared-checkpoints"),
        env=env,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    lines = _error_lines(done.stderr)
    assert len(lines) == 1, lines
    assert "RAY_AUTH_MODE=token" in lines[0] and "RAY_AUTH_TOKEN" in lines[0]
    assert "no-token" not in optuna.get_all_study_names(storage=pg.url)
    assert not (workdir / "no-token").exists()


def test_a_lost_worker_node_reschedules_its_trials_on_the_head(cluster):
    """Chaos: the worker node's host dies mid-search (every process of it SIGKILLed). Its
    trials are retried on the head from their checkpoints on the shared storage. Last in
    this module: the node stays dead."""
    c, pg, mlflow, workdir, dataset = cluster
    driver = c.popen(
        "head",
        [*NAS, "search", "--budget", "4trials", "--epochs", "6", "--scheduler", "none",
         "--warm-start", "none", "--dataset", str(dataset), "--workdir", str(workdir),
         "--name", "lost-node", "--storage", pg.url, "--tracking-uri", mlflow.url,
         "--ray-address", c.ray_address, "--checkpoint-uri", str(c.root / "shared-checkpoints")],
        env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    client = MlflowClient(mlflow.url)

    def on_worker() -> list:
        exp = client.get_experiment_by_name("lost-node")
        if exp is None:
            return []
        runs = client.search_runs([exp.experiment_id], "tags.`nas.role` = 'trial'")
        return [r for r in runs if r.data.tags.get("nas.node") == c.ip("w1")]

    deadline = time.monotonic() + 300
    while not on_worker() and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert on_worker(), "no trial reported from the worker node"
    c.kill_node("w1")
    out, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, err[-3000:]

    study = optuna.load_study(study_name="lost-node", storage=pg.url)
    exp = client.get_experiment_by_name("lost-node")
    runs = {
        int(r.data.tags["nas.trial"]): r
        for r in client.search_runs([exp.experiment_id], "tags.`nas.role` = 'trial'")
    }
    assert_stores_agree(study, runs)
    moved = [r for r in runs.values() if "nas.recoveries" in r.data.tags]
    assert moved, "no trial was retried after the node died"
    for run in moved:
        assert run.data.tags["nas.node"] == c.ip("head")
        assert run.data.tags["nas.status"] in ("completed", "diverged"), run.data.tags


def test_checkpoint_uri_is_checked_before_anything_starts(tmp_path):
    """Without a cluster: a URI of an unknown scheme, or a path this driver cannot write."""
    for uri, expected in (("foo://bucket/x", "Unrecognized"), ("/proc/nas-x", "cannot write")):
        done = subprocess.run(
            [
                *NAS,
                "search",
                "--budget",
                "1trials",
                "--workdir",
                str(tmp_path / "w"),
                "--checkpoint-uri",
                uri,
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = _error_lines(done.stderr)
        assert done.returncode == 2 and len(lines) == 1, (uri, lines)
        assert uri in lines[0] and expected in lines[0]
        assert not (tmp_path / "w").exists()
