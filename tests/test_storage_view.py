"""The search's storage (issue #30): Optuna's cache of finished trials fronts it, so it
returns exactly what a plain ``RDBStorage`` returns after creates, updates, a second writer
and a resume, and by trial 40 the search's storage and sampler ask the database no more than
Optuna's own storage of a URL with plain TPE does: statements and rows loaded counted, not
timed (the wrapper this replaces loaded 15 times the rows: 18,361 against 1,244)."""

from __future__ import annotations

import random
import warnings
from contextlib import contextmanager

import optuna
import sqlalchemy
from optuna.trial import TrialState
from sqlalchemy.orm import Mapper
from test_history_window import _objective

from nas.driver.search_run import make_sampler
from nas.study.storage import rdb_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _facts(trials: list[optuna.trial.FrozenTrial]) -> list[tuple]:
    return [(t.number, t.state, t.params, t.values, t.user_attrs, t.intermediate_values)
            for t in trials]  # fmt: skip


def _truth(url: str, name: str) -> list[tuple]:
    """The study as a plain RDBStorage reads it from the database (no cache)."""
    storage = optuna.storages.RDBStorage(url)
    study_id = storage.get_study_id_from_name(name)
    return _facts(storage.get_all_trials(study_id))


def test_the_cached_view_equals_the_database_after_a_second_writer_and_a_resume(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    ours = optuna.create_study(study_name="s", storage=rdb_storage(url), direction="maximize")
    other = optuna.load_study(study_name="s", storage=optuna.storages.RDBStorage(url))
    mine = [ours.ask() for _ in range(3)]
    for trial in mine:
        trial.suggest_float("x", 0, 1)
        trial.set_user_attr("spec", {"blocks": [trial.number]})
    theirs = other.ask()
    theirs.suggest_int("y", 1, 4)
    theirs.report(0.3, step=10)
    assert _facts(ours.get_trials()) == _truth(url, "s")  # running trials, both writers'
    ours.tell(mine[0], 0.5)
    other.tell(theirs, state=TrialState.PRUNED)  # the other driver ends its trial
    other.tell(mine[1].number, 0.7)  # and one of ours (a later driver closing it)
    mine[2].report(0.2, step=5)
    assert _facts(ours.get_trials()) == _truth(url, "s")
    resumed = optuna.load_study(study_name="s", storage=rdb_storage(url))
    resumed.tell(mine[2].number, state=TrialState.FAIL)
    assert _facts(resumed.get_trials()) == _truth(url, "s")
    assert _facts(ours.get_trials()) == _truth(url, "s")


@contextmanager
def _reads():
    """Count the SQL statements every engine of this process executes ("statements") and
    the rows the ORM loads from them ("rows")."""
    count = {"statements": 0, "rows": 0}

    def statement(*_args) -> None:
        count["statements"] += 1

    def row(*_args) -> None:
        count["rows"] += 1

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", statement)
    sqlalchemy.event.listen(Mapper, "load", row)
    try:
        yield count
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", statement)
        sqlalchemy.event.remove(Mapper, "load", row)


def _forty(study: optuna.Study) -> None:
    rng = random.Random(0)
    for _ in range(40):
        trial = study.ask()
        try:
            study.tell(trial, _objective(trial) + rng.random())
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)


def test_by_trial_40_the_search_asks_the_database_no_more_than_optunas_own_storage(tmp_path):
    theirs_url = f"sqlite:///{tmp_path / 'theirs.db'}"
    ours_url = f"sqlite:///{tmp_path / 'ours.db'}"
    plain_tpe = optuna.samplers.TPESampler(
        seed=0, multivariate=True, group=True, constant_liar=True, n_startup_trials=6
    )
    theirs = optuna.create_study(storage=theirs_url, sampler=plain_tpe, direction="maximize")
    ours = optuna.create_study(storage=rdb_storage(ours_url), direction="maximize",
                               sampler=make_sampler("tpe", 0))  # fmt: skip
    with _reads() as optunas:
        _forty(theirs)
    with _reads() as searchs:
        _forty(ours)
    assert searchs["statements"] <= optunas["statements"], (searchs, optunas)
    assert searchs["rows"] <= optunas["rows"], (searchs, optunas)
    assert len(ours.trials) == len(theirs.trials) == 40
