"""``--constraint``: soft limits through Optuna's ``constraints_func`` (issue 29)."""

from __future__ import annotations

import statistics

import optuna
import pytest

from nas.core.config import parse_constraint
from nas.core.errors import UsageError
from nas.driver.constraints import SoftLimits
from nas.driver.search_run import make_sampler


@pytest.mark.parametrize(
    ("text", "expected"),
    [("latency<=2ms", ("latency", 2.0)), ("latency <= 0.5", ("latency", 0.5)),
     ("params<=100k", ("params", 100_000.0)), ("MACS<=5M", ("macs", 5e6))],
)  # fmt: skip
def test_a_constraint_reads_as_a_cost_and_its_limit(text, expected):
    assert parse_constraint(text) == expected


@pytest.mark.parametrize("text", ["latency<2ms", "accuracy<=0.9", "params<=10ms",
                                  "latency<=0ms", "params<=-5", "latency"])  # fmt: skip
def test_a_bad_constraint_is_one_line_naming_it(text):
    with pytest.raises(UsageError, match="--constraint") as err:
        parse_constraint(text)
    assert "\n" not in str(err.value) and text in str(err.value)


def test_soft_limits_are_the_excess_over_each_limit():
    limits = SoftLimits(["latency<=2ms", "params<=100k"])
    excess = limits.excess({"latency_ms_b1": 3.5, "params": 50_000})
    assert excess == {"latency": pytest.approx(1.5), "params": -50_000.0}
    assert limits.excess({"params": 200_000}) == {"latency": 0.0, "params": 100_000.0}


def _late_choices(constraints: tuple[str, ...]) -> float:
    """The median x of trials 30-50 of TPE (through the search's history window)
    maximising x in [0, 100] where ``params`` is x."""
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", 0))

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 100.0)
        for cost, excess in SoftLimits(constraints).excess({"params": x}).items():
            trial.set_constraint(cost, excess)  # as the searcher does before it tells
        return x

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=50)
    return statistics.median(t.params["x"] for t in study.trials[30:])


def test_the_sampler_steers_within_a_limit_through_the_history_window():
    assert _late_choices(()) > 50
    assert _late_choices(("params<=20",)) < 30


def _study(limit: str | None, trials: list[tuple[float, int]]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for acc, params in trials:
        trial = study.ask()
        trial.set_user_attr("status", "completed")
        trial.set_user_attr("params", params)
        for cost, excess in SoftLimits([limit] if limit else []).excess({"params": params}).items():
            trial.set_constraint(cost, excess)
        study.tell(trial, acc)
    return study


def test_the_handover_prefers_a_trial_within_the_limits():
    from nas.study.records import best_record, trial_records

    trials = [(0.95, 500_000), (0.90, 50_000), (0.80, 20_000)]
    assert best_record(trial_records(_study(None, trials))).value == 0.95
    records = trial_records(_study("params<=100k", trials))
    assert best_record(records).value == 0.90
    assert [r.feasible for r in sorted(records, key=lambda r: r.trial)] == [False, True, True]
    none_within = trial_records(_study("params<=1k", trials))
    assert best_record(none_within).value == 0.95  # the best of all, and the search says so
