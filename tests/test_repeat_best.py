"""A selection that resists noise: the best trials' second evaluations rank them by the
mean, the leaderboard shows both, and the budget keeps back the time they take."""

from __future__ import annotations

import optuna
import pytest

from nas.core.budget import parse_budget
from nas.core.config import SearchConfig
from nas.driver.plan import fixed_plan, make_plan
from nas.driver.repeat_best import MAX_SHARE, repeats_for, reserve_seconds
from nas.study.events import SearchState
from nas.study.records import REPEATS_ATTR, best_record, format_table, trial_records

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(values: list[float]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for v in values:
        trial = study.ask()
        trial.set_user_attr("status", "completed")
        trial.set_user_attr("params", 1000)
        trial.set_user_attr("spec", {"v": v})
        study.tell(trial, v)
    return study


def test_repeated_trials_rank_first_by_their_mean():
    study = _study([0.99, 0.97, 0.96, 0.98])
    study.set_user_attr(REPEATS_ATTR, {"0": 0.93, "1": 0.97, "3": 0.975})
    records = trial_records(study)
    assert [r.trial for r in records] == [3, 1, 0, 2]  # means .9775, .97, .96; then unrepeated
    assert best_record(records).trial == 3  # what nas retrain --best takes
    table = format_table(records)
    assert "0.9800, again 0.9750" in table and "0.9900, again 0.9300" in table


def _cfg(budget: str, objective: str = "accuracy") -> SearchConfig:
    return SearchConfig(budget=parse_budget(budget), dataset="digits", data_dir=None,
                        space="image", objectives=tuple(objective.split(",")))  # fmt: skip


def test_the_budget_keeps_back_what_the_repeats_take():
    plan = make_plan(budget_seconds=180, train_size=1295, workers=2, seconds_per_sample=0.0004,
                     val_size=144, batch_size=128)  # fmt: skip
    cfg = _cfg("3m")
    n = repeats_for(cfg, plan, workers=2)
    assert n == 2  # one round of full-fidelity trials on the two workers fits
    kept = reserve_seconds(cfg, plan, workers=2)
    assert 0 < kept <= MAX_SHARE * 180
    state = SearchState(cfg.budget, 1.0, reserved=kept)
    state.start_clock()
    state.started -= 180 - kept + 0.5  # the clock past the budget less what is kept back
    assert state.check_budget()


@pytest.mark.parametrize(
    ("budget", "objective"), [("20trials", "accuracy"), ("3m", "accuracy,params")]
)
def test_no_repeats_without_a_clock_or_with_several_objectives(budget, objective):
    plan = fixed_plan(2, 1, train_size=1000)
    assert repeats_for(_cfg(budget, objective), plan, workers=2) == 0


def test_no_repeats_when_one_full_trial_takes_more_than_the_share():
    plan = make_plan(budget_seconds=60, train_size=54000, workers=1, seconds_per_sample=0.01)
    assert repeats_for(_cfg("1m"), plan, workers=1) == 0
