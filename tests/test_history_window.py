"""The sampler's bounded history (issue #30): within the window TPE proposes exactly what it
proposes over the whole study; past it, it sees the best and the latest trials and the
running ones, never more; the study and its trials are untouched."""

from __future__ import annotations

import warnings

import optuna
from optuna.trial import TrialState

from nas.driver.history_window import HistoryWindow
from nas.driver.search_run import make_sampler

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _tpe() -> optuna.samplers.TPESampler:
    return optuna.samplers.TPESampler(
        seed=3, multivariate=True, group=True, constant_liar=True, n_startup_trials=4
    )


def _objective(trial: optuna.Trial) -> float:
    """A conditional define-by-run space, like the image space's blocks."""
    x = trial.suggest_float("x", -4, 4)
    if trial.suggest_categorical("block", ["conv", "res"]) == "conv":
        y = trial.suggest_int("kernel", 1, 7, step=2)
    else:
        y = trial.suggest_float("width", 0.25, 2.0, log=True)
    if x > 3:
        raise optuna.TrialPruned()
    return -((x - 1) ** 2) + y


def _params(sampler: optuna.samplers.BaseSampler, n: int) -> list[dict]:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=n)
    return [t.params for t in study.trials]


def test_within_the_window_tpe_proposes_exactly_what_it_proposes_over_the_study():
    assert _params(HistoryWindow(_tpe(), best=20, recent=30), 40) == _params(_tpe(), 40)


class _Recording(optuna.samplers.TPESampler):
    """TPE that records how many finished trials each relative sample saw."""

    def __init__(self) -> None:
        super().__init__(seed=0, multivariate=True, group=True, constant_liar=True,
                         n_startup_trials=2)  # fmt: skip
        self.seen: list[int] = []

    def sample_relative(self, study, trial, search_space):
        states = (TrialState.COMPLETE, TrialState.PRUNED)
        self.seen.append(len(study.get_trials(deepcopy=False, states=states)))
        return super().sample_relative(study, trial, search_space)


def test_past_the_window_the_sampler_sees_the_best_and_the_latest_and_no_more():
    inner = _Recording()
    window = HistoryWindow(inner, best=5, recent=8)
    study = optuna.create_study(direction="maximize", sampler=window)
    study.optimize(_objective, n_trials=40)
    assert max(inner.seen) <= 5 + 8 + 8 // 2 + 1 and inner.seen[-1] >= 8  # and its slack
    assert len(study.trials) == 40  # the study itself keeps everything
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    kept = window.chosen(finished, study.directions)
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    top = sorted(complete, key=lambda t: -t.value)[:5]
    assert {t.number for t in top} <= {t.number for t in kept}
    assert {t.number for t in finished[-8:]} <= {t.number for t in kept}
    assert [t.number for t in kept] == sorted(t.number for t in kept)


def test_the_search_samples_tpe_through_a_window():
    sampler = make_sampler("tpe", 0)
    assert isinstance(sampler, HistoryWindow) and isinstance(
        sampler.inner, optuna.samplers.TPESampler
    )


def test_running_trials_reach_the_window_with_their_parameters_for_the_constant_liar():
    window = HistoryWindow(_tpe(), best=2, recent=2)
    study = optuna.create_study(direction="maximize", sampler=window)
    study.optimize(_objective, n_trials=8)  # past the window, so it is a copy
    running = study.ask()
    running.suggest_float("x", -4, 4)
    running.suggest_categorical("block", ["conv", "res"])
    study.ask().suggest_float("x", -4, 4)  # the next configuration brings the window up
    copies = window._mirror.study.get_trials(states=(TrialState.RUNNING,))
    assert {"x", "block"} <= set(copies[0].params) and copies[0].params["x"] == running.params["x"]
