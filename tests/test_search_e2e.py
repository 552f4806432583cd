"""``nas search`` end to end against real Ray, Optuna (SQLite / PostgreSQL) and MLflow (SQLite).

Small budgets (a few trials of two epochs on digits) keep these to a minute or so each.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from nas.cli import main
from nas.study.records import stored_status

pytestmark = pytest.mark.slow

FAST = ["--epochs", "2", "--grace-epochs", "1", "--cpus-per-trial", "1"]


def _search(workdir: Path, *extra: str) -> int:
    return main(["search", "--workdir", str(workdir), *FAST, *extra])


def _mlflow_trials(workdir: Path, name: str = "search") -> dict[int, object]:
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs(
        [exp.experiment_id], filter_string="tags.`nas.role` = 'trial'", max_results=1000
    )
    return {int(r.data.tags["nas.trial"]): r for r in runs}


def _study(workdir: Path, name: str = "search", storage: str | None = None) -> optuna.Study:
    return optuna.load_study(
        study_name=name, storage=storage or f"sqlite:///{workdir / 'optuna.db'}"
    )


def assert_stores_agree(study: optuna.Study, runs: dict[int, object]) -> None:
    """Every Optuna trial has one MLflow run with the same status and value."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name != "WAITING"]
    assert sorted(t.number for t in trials) == sorted(runs)
    for t in trials:
        run = runs[t.number]
        status = stored_status(t)  # as the leaderboard reads it
        if t.state.name != "RUNNING":
            assert run.data.tags["nas.status"] == status, (t.number, status, run.data.tags)
        assert run.data.tags["nas.spec_id"] == t.user_attrs.get("spec_id", "")
        if t.state.name == "COMPLETE" and status == "completed":
            assert run.data.metrics["val_acc"] == pytest.approx(t.values[0])
            assert run.data.metrics["params"] == t.user_attrs["params"]


def test_search_records_every_trial_in_both_stores(tmp_path, ray_session, capsys):
    assert _search(tmp_path, "--budget", "4trials", "--seed", "1") == 0
    out = capsys.readouterr()
    assert "Leaderboard" in out.out and "val_acc" in out.out
    study = _study(tmp_path)
    evaluated = [
        t for t in study.trials if t.user_attrs.get("status") not in ("rejected", "reused")
    ]
    assert len(evaluated) == 4
    assert any(t.state.name == "COMPLETE" for t in study.trials)
    assert_stores_agree(study, _mlflow_trials(tmp_path))
    for t in study.trials:
        assert {"spec_id", "params", "macs", "spec", "train"} <= set(t.user_attrs)
    # MLflow's UI opens the experiment as model training, not GenAI
    exp = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_experiment_by_name("search")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"

    # the leaderboard reads the study back without running anything
    assert main(["leaderboard", "--workdir", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(study.trials)
    assert {"trial", "state", "value", "values", "params", "macs", "spec_id"} <= set(rows[0])

    # a second search of the same name is refused, not merged
    assert _search(tmp_path, "--budget", "4trials") == 2


@pytest.mark.parametrize("cost", ["params", "latency"])
def test_multi_objective_gives_a_pareto_front(tmp_path, ray_session, capsys, cost):
    """``latency`` is measured only at a trial's end, after the first reports (it ended in
    Ray's "did not include the specified metric(s)" traceback once)."""
    objective = f"accuracy,{cost}"
    limit = ["--constraint", "params<=150k"] if cost == "latency" else []
    assert (
        _search(
            tmp_path, "--budget", "4trials", "--objective", objective, "--sampler", "nsga2", *limit
        )
        == 0
    )
    study = _study(tmp_path)
    assert len(study.directions) == 2
    assert study.best_trials, "a Pareto front"
    assert all(len(t.values) == 2 for t in study.best_trials)
    for t in study.trials:  # --constraint: each ended trial's excess, read by NSGA-II
        if limit and t.user_attrs.get("status") not in ("rejected", "reused"):
            assert t.constraints == {"params": t.user_attrs["params"] - 150_000}, t.number
    assert all(t.user_attrs["params"] <= 150_000 for t in study.best_trials)
    out = capsys.readouterr().out
    assert "Pareto" in out and "ms_b1" in out  # each member's measured latency beside its costs
    runs = _mlflow_trials(tmp_path)
    assert_stores_agree(study, runs)
    tagged = {n for n, run in runs.items() if run.data.tags.get("nas.pareto") == "true"}
    assert tagged == {t.number for t in study.best_trials}
    assert main(["leaderboard", "--workdir", str(tmp_path), "--pareto", "--json"]) == 0
    listed = {row["trial"] for row in json.loads(capsys.readouterr().out)}
    assert listed == tagged


def test_max_params_rejects_before_a_worker(tmp_path, ray_session):
    assert _search(tmp_path, "--budget", "2trials", "--max-params", "12k", "--seed", "3") == 0
    study = _study(tmp_path)
    rejected = [t for t in study.trials if t.user_attrs.get("status") == "rejected"]
    assert rejected, "a 12k-parameter limit must reject some digits architectures"
    for t in rejected:
        assert t.state.name == "PRUNED" and t.values is None and t.user_attrs["params"] > 12000
        assert "--max-params" in t.user_attrs["reason"]
    for t in study.trials:
        if t.state.name == "COMPLETE":
            assert t.user_attrs["params"] <= 12000
    assert_stores_agree(study, _mlflow_trials(tmp_path))


def test_max_latency_rejects_on_the_worker_without_training(tmp_path, ray_session, capsys):
    """The latency is the worker's to measure: over ``--max-latency-ms`` a network is
    measured, reported rejected and not trained."""
    code = _search(tmp_path, "--budget", "2trials", "--max-latency-ms", "0.0001")
    study = _study(tmp_path)
    ran = [t for t in study.trials if t.state.name != "WAITING"]
    assert ran and all(t.user_attrs.get("status") == "rejected" for t in ran)
    for t in ran:
        assert t.state.name == "PRUNED" and t.user_attrs["samples"] == 0
        assert "over --max-latency-ms 0.0001" in t.user_attrs["reason"]
        assert t.user_attrs["latency_ms_b1"] > 0.0001
    assert_stores_agree(study, _mlflow_trials(tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and "nas: error: no trial was within --max-latency-ms 0.0001" in err


def test_impossible_limit_ends_the_search_with_a_reason(tmp_path, ray_session, capsys):
    assert _search(tmp_path, "--budget", "2trials", "--max-params", "10") == 0
    assert "loosen" in capsys.readouterr().err
    study = _study(tmp_path)
    assert study.trials and all(t.user_attrs["status"] == "rejected" for t in study.trials)


def test_resume_keeps_trials_and_counts_spent_budget(tmp_path, ray_session):
    assert _search(tmp_path, "--budget", "25s", "--seed", "5") == 0
    first = {  # ended trials; a warm-start trial still WAITING in the queue runs on resume
        t.number: (t.state, t.values) for t in _study(tmp_path).trials if t.state.is_finished()
    }
    spent = json.loads((tmp_path / "search" / "search.json").read_text())["spent"]
    assert spent >= 25
    assert _search(tmp_path, "--resume", "--budget", "50s") == 0
    study = _study(tmp_path)
    after = {t.number: (t.state, t.values) for t in study.trials}
    for number, (state, values) in first.items():
        assert after[number] == (state, values), "completed trials are kept as they were"
    assert len(after) > len(first), "the resumed search evaluated more trials"
    state = json.loads((tmp_path / "search" / "search.json").read_text())
    assert state["spent"] >= 50 and state["spent"] < 50 + 60
    assert_stores_agree(study, _mlflow_trials(tmp_path))


def _postgres_url() -> str | None:
    import sqlalchemy

    for user in ("postgres", "root"):
        url = f"postgresql://{user}@127.0.0.1:5432/test"
        try:
            engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
            with engine.connect():
                pass
            engine.dispose()
            return url
        except Exception:
            continue
    return None


def test_search_with_postgresql_storage(tmp_path, ray_session):
    url = _postgres_url()
    if url is None:
        pytest.skip("no PostgreSQL server answers on 127.0.0.1:5432 (database 'test')")
    name = f"pg-{uuid.uuid4().hex[:8]}"
    assert _search(tmp_path, "--budget", "3trials", "--storage", url, "--name", name) == 0
    study = _study(tmp_path, name, storage=url)
    assert len([t for t in study.trials if t.user_attrs.get("status") != "rejected"]) >= 3
    assert not (tmp_path / "optuna.db").exists()
    assert_stores_agree(study, _mlflow_trials(tmp_path, name))
    optuna.delete_study(study_name=name, storage=url)


def test_ctrl_c_leaves_stores_consistent_and_resume_continues(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base = [sys.executable, "-m", "nas", "search", "--workdir", str(tmp_path)]
    cmd = [*base, "--budget", "3trials", "--epochs", "15", "--scheduler", "none", "--seed", "2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _trial_has_epochs(tmp_path, 2):
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "--resume" in err
    study = _study(tmp_path)
    runs = _mlflow_trials(tmp_path)
    assert study.trials, "a trial was running when Ctrl-C came"
    assert_stores_agree(study, runs)
    assert all(r.info.status != "RUNNING" for r in runs.values())
    interrupted = [
        n for n, r in runs.items() if r.data.tags.get("nas.reason", "").startswith("interrupted")
    ]
    assert interrupted, "the running trial is recorded as interrupted"
    assert all(runs[n].data.tags["nas.status"] == "stopped" for n in interrupted)
    before = {t.number for t in study.trials}
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    n = _train_size(tmp_path)  # MLflow steps count training samples: one epoch is n
    last_before = {
        number: max(_val_steps(client, runs[number]), default=0) for number in interrupted
    }
    assert max(last_before.values()) >= 2 * n, "a trial had two epochs as Ctrl-C came"

    done = subprocess.run([*base, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    study = _study(tmp_path)
    assert before <= {t.number for t in study.trials}, "no trial lost"
    runs = _mlflow_trials(tmp_path)
    assert_stores_agree(study, runs)
    for number in interrupted:
        t = study.trials[number]
        assert t.state.name == "COMPLETE" and t.user_attrs["epochs"] == 15, "resumed to the end"
        steps = _val_steps(client, runs[number])
        assert sorted(set(steps)) == [k * n for k in range(1, 16)], "trained to the end"
        # resumed from its checkpoint, not restarted: only the epoch reported as Ctrl-C came
        # (its checkpoint not yet in Ray's saved state) may be trained and logged again
        again = {s for s in steps if steps.count(s) > 1}
        assert again <= {last_before[number]}, sorted(steps)


def _val_steps(client: MlflowClient, run) -> list[int]:
    return [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")]


def _train_size(workdir: Path) -> int:
    state = json.loads((workdir / "search" / "search.json").read_text())
    return int(state["plan"]["train_size"])


def _trial_has_epochs(workdir: Path, epochs: int) -> bool:
    """True once a trial is running and every running trial that has reported has reported
    ``epochs`` epochs (so each has a checkpoint to resume from, not only its first report).
    Optuna's SQLite file is read read-only: opening it with Optuna while the search creates
    it would race the search's own schema set-up."""
    import sqlite3

    query = (
        "SELECT MAX(v.step) FROM trial_intermediate_values v JOIN trials t "
        "ON v.trial_id = t.trial_id WHERE t.state = 'RUNNING' GROUP BY v.trial_id"
    )
    try:
        samples = epochs * _train_size(workdir)
        db = sqlite3.connect(f"file:{workdir / 'optuna.db'}?mode=ro", uri=True, timeout=1)
        with contextlib.closing(db):
            reached = [row[0] for row in db.execute(query).fetchall()]
        return bool(reached) and min(reached) >= samples
    except (OSError, KeyError, ValueError, sqlite3.Error):
        return False


def _has_running_trial(workdir: Path) -> bool:
    try:
        return any(t.state.name == "RUNNING" for t in _study(workdir).trials)
    except Exception:
        return False


def test_planned_search_starts_from_the_warm_start_and_records_its_plan(tmp_path, ray_session):
    code = main(["search", "--workdir", str(tmp_path), "--budget", "40s", "--seed", "3"])
    assert code == 0
    state = json.loads((tmp_path / "search" / "search.json").read_text())
    plan = state["plan"]
    assert plan["source"] == "planned" and plan["seconds_per_sample"] > 0
    assert plan["rungs"][-1] == plan["max_samples"] and plan["report_at"][0] == plan["rungs"][0]
    study = _study(tmp_path)
    first = sorted(study.trials, key=lambda t: t.number)[:3]
    assert [t.user_attrs.get("warm_start") for t in first] == [
        "plain_cnn",
        "resnet",
        "mobilenet_v2",
    ]
    assert_stores_agree(study, _mlflow_trials(tmp_path))
    runs = _mlflow_trials(tmp_path)
    assert runs[0].data.tags["nas.warm_start"] == "plain_cnn"
    parent = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(
        runs[0].data.tags["mlflow.parentRunId"]
    )
    assert parent.data.params["plan.max_samples"] == str(plan["max_samples"])


def test_small_data_trials_are_the_mean_of_folds(tmp_path, ray_session, shared_data, capsys):
    gunpoint = str(shared_data / "ucr" / "GunPoint")
    assert _search(tmp_path, "--dataset", gunpoint, "--budget", "2trials") == 0
    state = json.loads((tmp_path / "search" / "search.json").read_text())
    assert state["plan"]["folds"] == 5
    capsys.readouterr()
    assert main(["leaderboard", "--workdir", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    done = [r for r in rows if r["status"] == "completed"]
    assert done and all(r["val_acc_std"] is not None for r in done)
    run = _mlflow_trials(tmp_path)[done[0]["trial"]]
    assert run.data.metrics["folds"] == 5 and "val_acc_std" in run.data.metrics
