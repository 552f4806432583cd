"""The trial lifecycle without a Ray cluster: the status table, classification, the search
state fed by events, MLflow tracking as a subscriber, and the ask-and-tell searcher against
a real (in-memory) Optuna study."""

from __future__ import annotations

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from ray.tune.search import Searcher

from nas.core.budget import parse_budget
from nas.driver.ray_adapters import BudgetStopper, EventCallback, activate
from nas.driver.searcher import NasSearcher, close_open_trials
from nas.study.events import (
    EpochReported,
    Progress,
    SearchState,
    TrialEnded,
    TrialRejected,
    TrialReused,
    TrialStarted,
)
from nas.study.records import best_record, handover_record, trial_records
from nas.study.status_table import TABLE, TrialStatus, classify, row
from nas.tracking.tracker import SearchTracker
from workers.trial import TrialConfig

S = TrialStatus


def test_every_status_has_one_row():
    assert set(TABLE) == set(TrialStatus)
    assert {r.optuna for r in TABLE.values()} <= {"RUNNING", "COMPLETE", "PRUNED", "FAIL"}
    assert {r.mlflow for r in TABLE.values()} <= {"RUNNING", "FINISHED", "KILLED", "FAILED"}


@pytest.mark.parametrize(
    ("status", "optuna_state", "mlflow_status"),
    [
        (S.COMPLETED, "COMPLETE", "FINISHED"),
        (S.REUSED, "COMPLETE", "FINISHED"),
        (S.PRUNED, "PRUNED", "KILLED"),
        (S.STOPPED, "PRUNED", "KILLED"),
        (S.DIVERGED, "FAIL", "FAILED"),
        (S.OOM, "FAIL", "FAILED"),
        (S.DRIVER_LOST, "FAIL", "KILLED"),
        (S.REJECTED, "PRUNED", "FAILED"),
    ],
)
def test_status_maps_to_optuna_and_mlflow(status, optuna_state, mlflow_status):
    assert row(status).optuna == optuna_state and row(status).mlflow == mlflow_status
    assert row(status.value) is row(status)


def test_stored_text_of_earlier_versions_parses():
    assert TrialStatus.parse("duplicate") is S.REUSED
    assert TrialStatus.parse(None) is None
    with pytest.raises(ValueError):
        TrialStatus.parse("bogus")


@pytest.mark.parametrize(
    ("result", "error", "spent", "expected"),
    [
        ({"samples": 500, "val_acc": 0.9, "status": "completed"}, False, False, S.COMPLETED),
        ({"samples": 200, "val_acc": 0.9, "status": "running"}, False, False, S.PRUNED),
        ({"samples": 200, "val_acc": 0.9, "status": "running"}, False, True, S.STOPPED),
        (
            {"epoch": 1, "val_acc": 0.0, "status": "diverged", "reason": "nan"},
            False,
            False,
            S.DIVERGED,
        ),  # fmt: skip
        ({"epoch": 0, "val_acc": 0.0, "status": "oom"}, False, False, S.OOM),
        ({}, False, False, S.STOPPED),
        (None, True, False, S.FAILED),
    ],
)
def test_classify(result, error, spent, expected):
    status, reason = classify(result, error, budget_spent=spent)
    assert status is expected
    assert (reason is None) == (expected is S.COMPLETED)


EMPTY = TrialConfig(spec={}, train={})


def _state(budget: str = "10trials") -> SearchState:
    return SearchState(parse_budget(budget), devices_per_trial=2.0)


def test_state_counts_best_and_device_budget():
    state = _state("1cpu-h")
    seen = []
    state.subscribe(seen.append)
    state.emit(TrialStarted(0, EMPTY))
    state.emit(EpochReported(0, {"val_acc": 0.5, "status": "running", "time_this_iter_s": 10}))
    state.emit(EpochReported(0, {"val_acc": 0.9, "status": "diverged", "time_this_iter_s": 5}))
    state.emit(TrialEnded(0, S.DIVERGED, "nan"))
    state.emit(TrialRejected(1, EMPTY, "too big"))
    state.emit(TrialReused(2, EMPTY, 0, S.REUSED, [0.7], "same"))
    state.emit(Progress(3))
    assert len(seen) == 7
    assert state.best == 0.7  # a diverged trial's report is not a best value
    assert state.counts == {"failed": 1, "rejected": 1, "done": 1}
    assert state.running == 3 and state.trials_started == 1
    assert state.device_seconds == pytest.approx(30.0)  # 15 s x 2 devices
    assert not state.check_budget()
    state.device_seconds = 3600.0
    assert state.check_budget() and state.budget_spent.is_set()


def test_trial_budget_never_ends_in_the_stopper():
    state = _state("2trials")
    assert not state.check_budget()


def test_tracker_records_events(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SearchTracker(uri, "study")
    tracker.start_search_run({"budget": "1m"}, resume=False)
    state = _state()
    state.subscribe(tracker.handle)
    config = TrialConfig(spec={"stages": []}, train={"lr": 0.1}, spec_id="abc")
    state.emit(TrialStarted(0, config, "ray0"))
    state.emit(EpochReported(0, {"epoch": 1, "val_acc": 0.5}))
    state.emit(TrialEnded(0, S.PRUNED, "by ASHA"))
    state.emit(TrialRejected(1, config, "over --max-params"))
    state.emit(TrialReused(2, config, 0, S.REUSED, [0.5], "same as 0"))
    client = MlflowClient(uri)
    runs = {
        r.data.tags["nas.trial"]: r
        for r in client.search_runs([tracker.experiment_id], "tags.`nas.role` = 'trial'")
    }
    assert runs["0"].info.status == "KILLED" and runs["0"].data.tags["nas.status"] == "pruned"
    assert runs["1"].info.status == "FAILED" and runs["1"].data.tags["nas.status"] == "rejected"
    assert runs["2"].data.tags["nas.status"] == "reused"
    assert runs["2"].data.metrics["val_acc"] == 0.5
    assert runs["0"].data.tags["mlflow.parentRunId"] == tracker.parent_run_id


class _Space:
    """A define-by-run function: one categorical width; width 99 is over the limit."""

    def __call__(self, trial: optuna.Trial) -> dict:
        width = trial.suggest_categorical("width", [8, 16, 99])
        trial.set_user_attr("config_key", f"w{width}")
        return {
            "spec": {},
            "train": {},
            "config_key": f"w{width}",
            "rejected": "over --max-params" if width == 99 else None,
            "trial_number": trial.number,
        }


@pytest.fixture
def searcher_and_state():
    study = optuna.create_study(
        study_name="lc", direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1)
    )
    state = _state()
    events = []
    state.subscribe(events.append)
    activate("lc", state)
    yield NasSearcher(_Space(), study=study, metrics=["val_acc"]), state, events
    activate("lc", None)


def test_searcher_rejects_reuses_and_tells(searcher_and_state):
    searcher, state, events = searcher_and_state
    for i in range(10):  # two widths can be trained; then every sample is rejected or reused
        config = searcher.suggest(f"ray{i}")
        if config == Searcher.FINISHED:
            break
        assert config["rejected"] is None
        searcher.on_trial_result(f"ray{i}", {"samples": 100, "val_acc": 0.5, "status": "running"})
        final = {"samples": 300, "val_acc": 0.8, "status": "completed"}
        searcher.on_trial_complete(f"ray{i}", final)
    assert i == 2 and "already evaluated" in state.gave_up
    study = searcher.study
    by_status = {}
    for t in study.get_trials():
        by_status.setdefault(t.user_attrs["status"], []).append(t)
    assert {t.state for t in by_status.get("rejected", [])} <= {TrialState.PRUNED}
    assert all(t.state == TrialState.COMPLETE for t in by_status["completed"])
    # every width drawn twice was reused, never trained twice
    trained = [t.user_attrs["config_key"] for t in by_status["completed"]]
    assert len(trained) == len(set(trained))
    for t in by_status.get("reused", []):
        assert t.values == [0.8] and t.user_attrs["reused_from"] in {x.number for x in study.trials}
    kinds = {type(e).__name__ for e in events}
    assert kinds == {"TrialRejected", "TrialReused"}
    assert not state.open_trials


def test_open_trials_end_stopped_with_their_last_report(searcher_and_state):
    searcher, state, _ = searcher_and_state
    config = searcher.suggest("ray0")
    searcher.on_trial_result("ray0", {"samples": 200, "val_acc": 0.6, "status": "running"})
    assert state.open_trials  # the searcher registered the live trial with the state
    lost = searcher.study.ask()  # RUNNING, held by no searcher: an earlier driver's
    close_open_trials(state, searcher.study)
    records = {r.trial: r for r in trial_records(searcher.study)}
    mine = records[config["trial_number"]]
    assert mine.status == "stopped" and mine.state == "PRUNED"
    assert mine.samples == 200 and mine.value == 0.6
    assert records[lost.number].status == "driver_lost"
    # an event, so the live view's last line, the ledger and MLflow count it as stopped
    assert state.counts["stopped"] == 1 and state.counts["failed"] == 1


def test_a_trial_handed_to_ray_but_never_started_is_recorded(searcher_and_state):
    searcher, state, events = searcher_and_state
    config = searcher.suggest("ray0")  # Ray holds it; the budget runs out before it starts
    close_open_trials(state, searcher.study)
    record = {r.trial: r for r in trial_records(searcher.study)}[config["trial_number"]]
    assert record.status == "stopped" and "before a worker started it" in record.reason
    cancelled = [e for e in events if type(e).__name__ == "TrialCancelled"]
    assert [e.number for e in cancelled] == [config["trial_number"]]
    assert cancelled[0].config.config_key == config["config_key"]
    assert state.counts["stopped"] == 1


def test_completed_at_chance_is_diverged():
    result = {"epoch": 5, "val_acc": 0.11, "status": "completed"}
    status, reason = classify(result, False, budget_spent=False, chance=0.12)
    assert status is S.DIVERGED and "chance" in reason
    assert classify(result, False, False, chance=0.05)[0] is S.COMPLETED


def _ranked_study() -> optuna.Study:
    """completed 0.098 (at chance, as 0.1 ranked it first), pruned 0.993, two completed ties."""
    study = optuna.create_study(direction="maximize")
    for status, value, params in [
        ("completed", 0.90, 5000),
        ("completed", 0.90, 1000),
        ("pruned", 0.993, 800),
        ("diverged", None, 100),
        ("rejected", None, 10),
    ]:
        trial = study.ask()
        trial.set_user_attr("status", status)
        trial.set_user_attr("params", params)
        trial.set_user_attr("spec", {"name": status})
        state = TrialState[row(status).optuna]
        if state == TrialState.PRUNED and value is not None:
            trial.report(value, 2)
            trial.set_user_attr("val_acc", value)
            trial.set_user_attr("samples", 2000)
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    return study


def test_ranking_groups_then_value_then_fewer_params():
    records = trial_records(_ranked_study())
    assert [(r.status, r.params) for r in records] == [
        ("completed", 1000),  # a tie on value goes to the smaller model
        ("completed", 5000),
        ("pruned", 800),
        ("diverged", 100),
        ("rejected", 10),
    ]
    assert records[2].value == 0.993  # a pruned trial's value is its last report
    assert best_record(records).params == 1000


def test_handover_takes_the_best_reported_trial_when_none_completed():
    study = optuna.create_study(direction="maximize")
    for value in (0.4, 0.7):
        trial = study.ask()
        trial.set_user_attr("spec", {"n": value})
        trial.set_user_attr("status", "stopped")
        trial.set_user_attr("val_acc", value)
        trial.set_user_attr("samples", 3000)
        study.tell(trial, state=TrialState.PRUNED)
    best, note = handover_record(trial_records(study))
    assert best.value == 0.7 and "no trial completed" in note
    assert handover_record([]) == (None, None)


def test_the_result_that_ends_a_trial_is_its_last_report(searcher_and_state):
    searcher, _, _ = searcher_and_state
    config = searcher.suggest("ray0")
    searcher.on_trial_result("ray0", {"samples": 100, "val_acc": 0.5, "status": "running"})
    # ASHA stops it on its second result, which Ray hands only to on_trial_complete
    searcher.on_trial_complete("ray0", {"samples": 300, "val_acc": 0.7, "status": "running"})
    (frozen,) = [t for t in searcher.study.trials if t.number == config["trial_number"]]
    assert frozen.state == TrialState.PRUNED
    assert frozen.intermediate_values == {100: 0.5, 300: 0.7}
    assert trial_records(searcher.study)[0].value == 0.7


def test_a_restore_older_than_the_study_stops_the_trials_that_ended_since(tmp_path):
    """Ray's checkpoint of the searcher can predate the study: a driver closed a trial and
    was killed before Ray saved again. The next driver restores that trial as running; it
    must not report to the ended Optuna trial (Optuna refuses), nor reach MLflow again."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(
        study_name="lc", storage=storage, direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=1),
    )  # fmt: skip
    state = _state()
    activate("lc", state)
    try:
        searcher = NasSearcher(_Space(), study=study, metrics=["val_acc"], storage=storage)
        first, second = searcher.suggest("ray0"), searcher.suggest("ray1")
        searcher.on_trial_result("ray1", {"samples": 100, "val_acc": 0.5, "status": "running"})
        searcher.save(str(tmp_path / "searcher.json"))
        study.tell(second["trial_number"], state=TrialState.PRUNED)  # the killed driver's close

        events = []
        state = _state()
        state.subscribe(events.append)
        activate("lc", state)
        restored = NasSearcher(_Space(), study=study, metrics=["val_acc"], storage=storage)
        restored.restore(str(tmp_path / "searcher.json"))
        assert set(restored.trials) == {"ray0"} and state.stale_trials == {"ray1"}
        assert set(state.open_trials) == {first["trial_number"]}

        restored.on_trial_result("ray1", {"samples": 300, "val_acc": 0.7, "status": "running"})
        restored.on_trial_complete("ray1", {"samples": 300, "val_acc": 0.7, "status": "running"})
        stopper = BudgetStopper("lc")
        assert stopper("ray1", {}) and not stopper("ray0", {})

        class RayTrial:
            trial_id, config, last_result, num_failures = "ray1", second, {}, 0

        callback = EventCallback("lc")
        callback.on_trial_start(0, [], RayTrial())
        callback.on_trial_result(0, [], RayTrial(), {"samples": 300, "val_acc": 0.7})
        callback.on_trial_complete(0, [], RayTrial())
        assert events == []
        (ended,) = [t for t in study.trials if t.number == second["trial_number"]]
        assert ended.state == TrialState.PRUNED and ended.intermediate_values == {100: 0.5}
    finally:
        activate("lc", None)


def test_a_worker_killed_by_rays_memory_monitor_stops_the_search_with_one_line(tmp_path):
    """Ray Tune raises out of ``Tuner.fit`` when its memory monitor kills a trial's actor
    while it starts (seen on Fashion-MNIST): the search stops with a reason and --resume."""
    from nas.core.config import SearchConfig
    from nas.driver.search_run import _fit, node_out_of_memory

    text = (
        "Caught unexpected exception: 1 worker(s) were killed due to the node running low "
        "on memory. Memory on the node (IP: 10.0.0.1) was 22.41GB used / 23.54GB limit"
    )

    class Killed:  # what Ray Tune's actor manager raised from Tuner.fit
        def fit(self) -> None:
            raise RuntimeError(text)

    assert node_out_of_memory(RuntimeError(text))
    assert not node_out_of_memory(RuntimeError("something else"))
    cfg = SearchConfig(parse_budget("1m"), "digits", None, "image", workdir=tmp_path)
    state = _state("1m")
    assert _fit(Killed(), state, None, cfg) == "stopped"
    assert "ran low on memory" in state.stop_reason
    assert f"nas search --resume --workdir {tmp_path}" in state.stop_reason
