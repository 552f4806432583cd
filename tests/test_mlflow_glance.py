"""What a search leaves in MLflow, read back through MlflowClient (SQLite store, no Ray): the
few params and the artifacts of a trial, per-step and final metrics, the best trial marked
and linked, the leaderboard with run ids, ``--resume`` updating the budget, the trials view
and its link, Optuna's plots, and ``nas ui``'s one-line errors."""

from __future__ import annotations

import json
import socket

import optuna
from mlflow.tracking import MlflowClient

from nas.cli import main
from nas.core.budget import parse_budget
from nas.core.config import DataInfo
from nas.study.events import EpochReported, SearchState, TrialEnded, TrialStarted
from nas.study.records import TrialRecord
from nas.study.status_table import TrialStatus
from nas.tracking import view as mlflow_view
from nas.tracking.plots import render
from nas.tracking.tracker import SearchTracker
from search_spaces import load_zoo
from workers.trial import TrialConfig

S = TrialStatus
DATA = DataInfo("digits", None, 2, 1, (8, 8), 10, train_size=1400, val_size=200)
CONFIG = {"budget": "2m", "dataset": "digits", "space": "image", "seed": 0}


def _tracker(tmp_path, config=CONFIG, resume=False) -> SearchTracker:
    tracker = SearchTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "study")
    tracker.check_write_access()
    tracker.describe_data(DATA, 0.1, 0)
    tracker.start_search_run(config, resume=resume)
    return tracker


def _config(width: int = 64) -> TrialConfig:
    spec = load_zoo("resnet18")
    spec["stages"][0]["out"] = width
    train = {"optimizer": "sgd", "lr": 0.1, "batch_size": 64, "momentum": 0.9, "nesterov": True}
    return TrialConfig(spec=spec, train=train, spec_id=f"id{width}", params=1000 + width, macs=5000)


def _report(samples: int, acc: float, status: str = "running", **extra) -> dict:
    return {"samples": samples, "epoch": samples / 100, "val_acc": acc, "val_loss": 1 - acc,
            "train_loss": 1.5 - acc, "lr": 0.1 / samples, "images_per_s": 900.0,
            "peak_memory_mb": 300.0 + samples / 100, "status": status, "params": 1064,
            "macs": 5000, "hostname": "worker-a", "node_ip": "10.0.0.2", **extra}  # fmt: skip


def _run(tracker: SearchTracker, state: SearchState, n: int, accs: list[float], end: S) -> None:
    state.emit(TrialStarted(n, _config(32 + n), f"ray{n}"))
    for i, acc in enumerate(accs, 1):
        last = i == len(accs) and end == S.COMPLETED
        extra = {"latency_ms_b1": 0.5, "latency_ms_b64": 9.0} if last else {}
        state.emit(EpochReported(n, _report(100 * i, acc, "completed" if last else "running", **extra)))  # fmt: skip
    state.emit(TrialEnded(n, end, None if end == S.COMPLETED else "stopped by the scheduler"))


def _state(tracker: SearchTracker) -> SearchState:
    state = SearchState(parse_budget("2m"), 1.0)
    state.subscribe(tracker.handle)
    return state


def test_a_trial_run_has_few_params_its_spec_summary_dataset_and_curves(tmp_path):
    tracker = _tracker(tmp_path)
    _run(tracker, _state(tracker), 0, [0.5, 0.7, 0.8], S.COMPLETED)
    client = MlflowClient(tracker.tracking_uri)
    run = client.get_run(tracker._trial_runs[0])
    params = run.data.params
    assert 10 <= len(params) <= 18, sorted(params)
    assert params["arch.blocks"] == "basic,basic,basic,basic" and params["arch.depth"] == "8"
    assert params["arch.widths"] == "32,128,256,512" and params["train.optimizer"] == "sgd"
    assert "train.momentum" not in params and "cost.params" not in params
    # constants once, curves per report, the end's fidelity, latency and peak memory
    assert len(client.get_metric_history(run.info.run_id, "params")) == 1
    assert run.data.metrics["params"] == 1032 and run.data.metrics["macs"] == 5000
    acc = client.get_metric_history(run.info.run_id, "val_acc")
    assert [(m.step, m.value) for m in acc] == [(100, 0.5), (200, 0.7), (300, 0.8)]
    assert len(client.get_metric_history(run.info.run_id, "lr")) == 3
    assert "epoch" not in run.data.metrics and "images_per_s" in run.data.metrics
    assert run.data.metrics["samples"] == 300 and run.data.metrics["epochs"] == 3
    assert run.data.metrics["latency_ms_b1"] == 0.5
    assert run.data.metrics["peak_memory_mb"] == 303.0  # the largest the worker reported
    tags = run.data.tags
    assert tags["nas.node"] == "10.0.0.2" and tags["nas.host"] == "worker-a"
    assert tags["nas.status"] == "completed"
    assert tags["mlflow.note.content"] == "completed after 300 samples, val_acc 0.8000"
    assert run.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"spec.json", "arch_summary.txt"} <= artifacts
    summary = open(client.download_artifacts(run.info.run_id, "arch_summary.txt")).read()
    assert "stages.0" in summary and "params:" in summary
    [dataset] = run.inputs.dataset_inputs
    assert dataset.dataset.name == "digits"
    assert json.loads(dataset.dataset.profile)["train_samples"] == 1400


def test_the_best_trial_is_tagged_linked_and_the_history_is_a_curve(tmp_path):
    tracker = _tracker(tmp_path)
    state = _state(tracker)
    _run(tracker, state, 0, [0.4, 0.5], S.COMPLETED)
    _run(tracker, state, 1, [0.6, 0.7], S.COMPLETED)
    _run(tracker, state, 2, [0.9], S.PRUNED)  # a pruned trial is never the best
    client = MlflowClient(tracker.tracking_uri)
    runs = tracker._trial_runs
    assert client.get_run(runs[1]).data.tags["nas.best"] == "true"
    assert "nas.best" not in client.get_run(runs[0]).data.tags
    pruned = client.get_run(runs[2])
    assert pruned.info.status == "KILLED" and pruned.data.tags["nas.status"] == "pruned"
    history = client.get_metric_history(tracker.parent_run_id, "best_val_acc")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.7), (3, 0.7)]

    records = [
        TrialRecord(1, "COMPLETE", "completed", 0.7, [0.7], 1033, 5000, 200, 2.0, "id33"),
        TrialRecord(0, "COMPLETE", "completed", 0.5, [0.5], 1032, 5000, 200, 2.0, "id32"),
        TrialRecord(2, "PRUNED", "pruned", 0.9, None, 1034, 5000, 100, 1.0, "id34"),
    ]
    tracker.end_search_run("FINISHED", {"best_val_acc": 0.7, "trials": 3.0}, records)
    parent = client.get_run(tracker.parent_run_id)
    assert parent.data.tags["nas.best_trial"] == "1"
    assert parent.data.tags["nas.best_run_id"] == runs[1]
    assert f"runs/{runs[1]})" in parent.data.tags["mlflow.note.content"]
    history = client.get_metric_history(tracker.parent_run_id, "best_val_acc")
    assert len({m.step for m in history}) == 3  # the summary did not add a step-0 point
    board = json.loads(open(client.download_artifacts(parent.info.run_id, "leaderboard.json")).read())  # fmt: skip
    assert [(r["trial"], r["run_id"]) for r in board] == [(1, runs[1]), (0, runs[0]), (2, runs[2])]
    csv_text = open(client.download_artifacts(parent.info.run_id, "leaderboard.csv")).read()
    assert csv_text.splitlines()[0].endswith("run_id") and runs[1] in csv_text


def test_resume_updates_the_budget_and_config_params_stay(tmp_path):
    tracker = _tracker(tmp_path)
    tracker.end_search_run("FINISHED", {}, [])
    resumed = _tracker(tmp_path, {**CONFIG, "budget": "5m"}, resume=True)
    assert resumed.parent_run_id == tracker.parent_run_id
    client = MlflowClient(tracker.tracking_uri)
    parent = client.get_run(tracker.parent_run_id)
    assert parent.data.tags["nas.budget"] == "5m"
    assert parent.data.params["dataset"] == "digits" and "budget" not in parent.data.params
    config = json.loads(open(client.download_artifacts(parent.info.run_id, "search_config.json")).read())  # fmt: skip
    assert config["budget"] == "5m"
    resumed.stop_system_metrics()


def test_the_trials_view_is_a_saved_view_and_the_link_opens_it(tmp_path):
    tracker = _tracker(tmp_path)
    tracker.stop_system_metrics()
    exp = MlflowClient(tracker.tracking_uri).get_experiment(tracker.experiment_id)
    envelope = json.loads(exp.tags["mlflow.sharedViewState.nas-trials"])
    assert envelope["name"] == "nas: trials by val_acc" and isinstance(envelope["createdAt"], int)
    state = json.loads(envelope["state"])
    assert state["orderByKey"] == "metrics.`val_acc`" and state["orderByAsc"] is False
    assert state["selectedColumns"][0] == "metrics.`val_acc`"
    assert "tags.`nas.status`" in state["selectedColumns"]
    link = mlflow_view.link("http://127.0.0.1:5000/", tracker.experiment_id)
    assert link == (
        f"http://127.0.0.1:5000/#/experiments/{tracker.experiment_id}/runs"
        "?workflowType=machine_learning&viewStateShareKey=nas-trials"
    )
    assert tracker.link() is None  # a local store: `nas ui` serves it
    assert tracker.link("http://h:1").startswith("http://h:1/#/experiments/")


def test_optuna_plots_are_drawn_as_png(tmp_path):
    study = optuna.create_study(direction="maximize")
    for _ in range(6):
        trial = study.ask()
        x = trial.suggest_float("lr", 1e-3, 1.0, log=True)
        depth = trial.suggest_int("depth", 1, 4)
        for step in range(3):
            trial.report(x * (step + 1) / depth, step)
        study.tell(trial, x / depth)
    drawn = render(study, tmp_path)
    expected = {"optimization_history", "param_importances", "parallel_coordinate",
                "intermediate_values"}  # fmt: skip
    assert set(drawn) == expected
    for path in drawn.values():
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"

    pareto = optuna.create_study(directions=["maximize", "minimize"])
    pareto.optimize(lambda t: (t.suggest_float("a", 0, 1), t.suggest_float("b", 0, 1)), 8)
    assert "pareto_front" in render(pareto, tmp_path)


def test_nas_ui_errors_are_one_line(tmp_path, capsys):
    assert main(["ui", "--workdir", str(tmp_path / "nowhere")]) == 2
    assert "no MLflow store there" in capsys.readouterr().err
    tracker = _tracker(tmp_path)
    tracker.stop_system_metrics()
    assert main(["ui", "--workdir", str(tmp_path), "--name", "other"]) == 2
    assert "--name 'other': no search of that name" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", "--workdir", str(tmp_path), "--port", str(port)]) == 2
    assert f"--port {port}:" in capsys.readouterr().err
    assert main(["ui", "--workdir", str(tmp_path), "--port", "0"]) == 2


def test_the_status_table_marks_only_full_fidelity_green():
    from nas.study.status_table import TABLE

    green = {s for s, r in TABLE.items() if r.mlflow == "FINISHED"}
    assert green == {S.COMPLETED, S.REUSED}


def test_the_plots_take_at_most_a_tenth_of_the_driver(monkeypatch):
    """A drawing that took long holds the next one back by nine times as long."""
    from nas.tracking import plots

    clock = [100.0]
    monkeypatch.setattr(plots.time, "monotonic", lambda: clock[0])
    drawings = []

    def slow_render(study, out_dir):
        drawings.append(clock[0])
        clock[0] += 20.0  # this drawing took 20 s
        return {}

    monkeypatch.setattr(plots, "render", slow_render)
    refresher = plots.PlotRefresher(study=None, client=None, run_id="r", interval_s=1.0)
    refresher.trial_ended()
    refresher._thread.join()
    clock[0] += 150.0  # 150 s after it ended: 170 s after it began, fewer than 200
    refresher.trial_ended()
    assert len(drawings) == 1
    clock[0] += 40.0
    refresher.trial_ended()
    refresher._thread.join()
    assert len(drawings) == 2
