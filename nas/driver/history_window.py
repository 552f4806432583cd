"""A bounded history for a model-based Optuna sampler: its cost stays flat as a study grows.

TPE fits its densities to every finished trial, several times per configuration (once per
group of the define-by-run space and once per parameter sampled on its own), so the driver's
cost of one configuration grows with the study: fine for a hundred trials, seconds at
thousands, while a cluster's workers wait. :class:`HistoryWindow` hands the sampler it wraps
a study of at most ``best + recent`` finished trials instead: the ``best`` best (what TPE's
"good" group is drawn from: ``gamma`` takes at most 25) and the ``recent`` latest (where the
search is now), plus the trials still running (for the constant liar). Below that size the
window holds every finished trial, so the sampler proposes what it would over the study.

The window is an in-memory study kept with Optuna's public API (``create_trial``,
``add_trial`` and ``tell``: parameters, values and states), brought up to date once per
configuration and reused by every call the sampler makes for it. The sampler always sees a
window, never the study itself (TPE's grouped search space is tied to the one study it first
saw). The current trial is copied in as running, so the sampler keeps what it shares between
the calls of one trial there. Read from the study at every configuration, the window is as
safe with several drivers and on resume as the study is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

#: Default window: TPE's good group takes at most 25 trials (a tenth of the window: 10),
#: all from the best 25; the recent trials carry where the search is now. TPE's cost is
#: linear in the window: over 200 trials it was a quarter of the driver's time per trial
#: at 16 trials at once (issue #30), over 100 about half that.
BEST, RECENT = 25, 75
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class _Mirror:
    """An in-memory study that follows a real one, trial by trial (real number -> its
    copy's number); finished copies hold parameters, values and intermediate values."""

    def __init__(self, directions: Sequence[StudyDirection], sampler: BaseSampler) -> None:
        self.study = optuna.create_study(directions=directions, sampler=sampler)
        self.copy_of: dict[int, int] = {}  # real trial number -> the copy's number
        self.open: set[int] = set()  # real numbers copied while running
        self.seen: set[int] = set()  # real numbers copied, or left out of the window
        self.finished = 0  # finished copies (what the window holds)
        self.size = 0  # every copy, failed ones included

    def add(self, t: FrozenTrial) -> None:
        self.study.add_trial(_plain(t))
        self.copy_of[t.number] = self.size
        self.size += 1
        self.seen.add(t.number)
        if t.state == TrialState.RUNNING:
            self.open.add(t.number)
        elif t.state in _FINISHED:
            self.finished += 1

    def close(self, t: FrozenTrial) -> None:
        """Running trial ``t`` ended, or took parameters: its running copy is failed, which
        the sampler ignores, and a completed, pruned or still running ``t`` copied anew."""
        self.open.discard(t.number)
        self.study.tell(self.copy_of[t.number], state=TrialState.FAIL)
        if t.state in _FINISHED or t.state == TrialState.RUNNING:
            self.add(t)

    def stale(self, t: FrozenTrial) -> bool:
        """True when running trial ``t`` has taken parameters its copy lacks (the constant
        liar needs them: a running trial counts as a bad one where it sampled)."""
        return len(t.params) != len(self.current(t.number).params)

    def current(self, number: int) -> FrozenTrial:
        return self.study.get_trials(deepcopy=False)[self.copy_of[number]]


class HistoryWindow(BaseSampler):
    """``inner`` over the best ``best`` and the latest ``recent`` finished trials (and the
    running ones) of the study: all of them while it has no more than that.

    The window follows the study: each configuration copies in only the trials that started
    or ended since the last (in the order they did), and the window is chosen anew from
    the whole study once it has grown by half of ``recent``, so a configuration costs the
    same at trial 5,000 as at trial 300."""

    def __init__(self, inner: BaseSampler, best: int = BEST, recent: int = RECENT) -> None:
        self.inner = inner
        self.best = best
        self.recent = recent
        self._mirror: _Mirror | None = None
        self._for: int | None = None  # the trial number the window was last brought up to

    # -- what the wrapped sampler sees -------------------------------------------------------

    def _view(self, study: optuna.Study, trial: FrozenTrial) -> tuple[optuna.Study, FrozenTrial]:
        """(the window of the study, the current trial as the window knows it)."""
        mirror = self._mirror
        if mirror is None or self._for != trial.number:
            mirror = self._follow(study)
            self._for = trial.number
        return mirror.study, mirror.current(trial.number)

    def _follow(self, study: optuna.Study) -> _Mirror:
        """Bring the window up to date with ``study`` (a new one when it outgrew itself)."""
        limit = self.best + self.recent
        mirror = self._mirror
        if (
            mirror is None
            or list(mirror.study.directions) != list(study.directions)
            or mirror.finished > limit + self.recent // 2
            or mirror.size > 3 * limit
        ):
            mirror = self._mirror = _Mirror(study.directions, self.inner)
            finished = study.get_trials(deepcopy=False, states=_FINISHED)
            for t in self.chosen(finished, study.directions):
                mirror.add(t)
            mirror.seen.update(t.number for t in finished)
        for t in study.get_trials(deepcopy=False):
            if t.number in mirror.open and (t.state.is_finished() or mirror.stale(t)):
                mirror.close(t)  # and copied again: ended, or running with its parameters
            elif t.number not in mirror.seen and (
                t.state in _FINISHED or t.state == TrialState.RUNNING
            ):
                mirror.add(t)
        return mirror

    def chosen(
        self, finished: Sequence[FrozenTrial], directions: Sequence[StudyDirection]
    ) -> list[FrozenTrial]:
        """The window of ``finished``: the ``best`` best by the first objective (completed
        ones, then pruned ones by their last intermediate value) and the ``recent`` latest,
        in trial order, each once; all of them while they are no more than that."""
        if len(finished) <= self.best + self.recent:
            return list(finished)
        sign = -1.0 if directions[0] == StudyDirection.MAXIMIZE else 1.0

        def rank(t: FrozenTrial) -> tuple[int, float]:
            if t.state == TrialState.COMPLETE and t.values:
                return 0, sign * t.values[0]
            last = t.intermediate_values.get(max(t.intermediate_values, default=-1))
            return 1, sign * last if last is not None else float("inf")

        best = sorted(finished, key=rank)[: self.best]
        recent = sorted(finished, key=lambda t: t.number)[-self.recent :]
        kept = {t.number: t for t in (*best, *recent)}
        return [kept[n] for n in sorted(kept)]

    # -- BaseSampler -------------------------------------------------------------------------

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(*self._view(study, trial))

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.inner.sample_relative(*self._view(study, trial), search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        view, current = self._view(study, trial)
        return self.inner.sample_independent(view, current, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def _plain(t: FrozenTrial) -> FrozenTrial:
    """``t`` as a new trial of a window: parameters, values, state and system attributes
    (where Optuna keeps a trial's constraint values), no user attributes."""
    values = t.values if t.state == TrialState.COMPLETE else None
    return optuna.trial.create_trial(
        state=t.state,
        params=t.params,
        distributions=t.distributions,
        values=values,
        intermediate_values=t.intermediate_values if t.state == TrialState.PRUNED else None,
        system_attrs=t.system_attrs,
    )
