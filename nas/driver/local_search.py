"""Local search around the incumbent, mixed with exploration: an Optuna sampler.

On small architecture spaces a few dozen evaluations of TPE tie random sampling, while local
search around the best configurations so far and regularized evolution do clearly better
(White et al. 2021, "Local search is state of the art for NAS benchmarks"; Real et al. 2019).
:class:`AroundIncumbent` proposes each trial one of two ways:

- *explore* (a share :data:`EXPLORE` of the trials, and every trial until
  :data:`MIN_RANKED` have been ranked): the wrapped sampler (TPE over a bounded window)
  proposes it;
- *mutate*: a parent is drawn from the :data:`PARENTS` best trials so far (ranked by the
  highest fidelity they reached, then by their value there: a network ASHA promoted to the
  top outranks one it cut early), and the trial repeats the parent's every decision but one,
  drawn at random: one block type, one width or depth, one training setting. A categorical
  of numbers moves to a neighbouring value, a range moves by a small step (a factor on a log
  scale); a decision the parent never made (a new conditional one) is drawn at random.

It works only through Optuna's public ``BaseSampler`` API, on the study it is handed, so RDB
storage, several drivers, resume and the cluster work as with any sampler: the population
is the study itself, read at every trial, and the sampler keeps in memory only which
decisions the trials now being sampled take from which parent. Multi-objective studies are
explored only.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

EXPLORE = 0.3  # share of trials the wrapped sampler proposes once there is an incumbent
PARENTS = 5  # parents are drawn from this many of the best trials so far
MIN_RANKED = 6  # ranked trials before the first mutation (the warm start and a few draws)
LOG_STEP = 0.5  # a log-scale range moves by a factor exp(N(0, LOG_STEP))
LINEAR_STEP = 0.15  # a linear range moves by N(0, LINEAR_STEP * its width)


@dataclass(frozen=True)
class Mutation:
    """How one trial is proposed: ``parent``'s decisions, ``target`` changed."""

    parent: int
    params: dict[str, Any]
    target: str


class AroundIncumbent(BaseSampler):
    """``explorer`` for a share ``explore`` of the trials, else one decision of one of the
    ``parents`` best trials changed (see the module doc)."""

    def __init__(
        self,
        explorer: BaseSampler,
        *,
        seed: int | None = None,
        explore: float = EXPLORE,
        parents: int = PARENTS,
        min_ranked: int = MIN_RANKED,
    ) -> None:
        if not 0.0 <= explore <= 1.0:
            raise ValueError(f"explore={explore}: expected a share in [0, 1]")
        self.explorer = explorer
        self.explore = explore
        self.parents = parents
        self.min_ranked = min_ranked
        self._rng = random.Random(seed)
        self._random = RandomSampler(seed=None if seed is None else seed + 1)
        self._mutations: dict[int, Mutation] = {}

    # -- choosing how a trial is proposed ------------------------------------------------------

    def ranked(self, study: optuna.Study) -> list[FrozenTrial]:
        """Completed and pruned trials, best first: by the highest step (fidelity) they
        reported, then by their value there (their final value when completed)."""
        if len(study.directions) != 1:
            return []
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0

        def key(t: FrozenTrial) -> tuple[float, float]:
            if t.state == TrialState.COMPLETE and t.values:
                top = max(t.intermediate_values, default=math.inf)
                return (top, sign * t.values[0])
            step = max(t.intermediate_values)
            return (step, sign * t.intermediate_values[step])

        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        usable = [
            t
            for t in finished
            if t.params and (t.state == TrialState.COMPLETE or t.intermediate_values)
        ]
        return sorted(usable, key=key, reverse=True)

    def mutation_for(self, study: optuna.Study, trial: FrozenTrial) -> Mutation | None:
        """The mutation trial ``trial`` is proposed by, or None when it explores."""
        ranked = self.ranked(study)
        if len(ranked) < self.min_ranked or self._rng.random() < self.explore:
            return None
        parent = self._rng.choice(ranked[: self.parents])
        target = self._rng.choice(sorted(parent.params))
        return Mutation(parent.number, dict(parent.params), target)

    # -- BaseSampler ---------------------------------------------------------------------------

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.explorer.before_trial(study, trial)
        mutation = self.mutation_for(study, trial)
        if mutation is not None:
            self._mutations[trial.number] = mutation

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if trial.number in self._mutations:
            return {}
        return self.explorer.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if trial.number in self._mutations:
            return {}
        return self.explorer.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        mutation = self._mutations.get(trial.number)
        if mutation is None:
            return self.explorer.sample_independent(study, trial, param_name, param_distribution)
        old = mutation.params.get(param_name)
        if old is None or not contains(param_distribution, old):
            return self._random.sample_independent(study, trial, param_name, param_distribution)
        if param_name == mutation.target:
            return neighbour(old, param_distribution, self._rng)
        return old

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._mutations.pop(trial.number, None)
        self.explorer.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._rng = random.Random()
        self._random.reseed_rng()
        self.explorer.reseed_rng()


def contains(dist: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is one ``dist`` can take (public attributes only)."""
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if isinstance(dist, IntDistribution | FloatDistribution):
        return isinstance(value, int | float) and dist.low <= value <= dist.high
    return False


def neighbour(value: Any, dist: BaseDistribution, rng: random.Random) -> Any:
    """A value of ``dist`` near ``value`` and different from it where ``dist`` has another:
    the next or previous of a categorical of numbers (any other choice otherwise), a small
    step within a range."""
    if isinstance(dist, CategoricalDistribution):
        choices = list(dist.choices)
        others = [c for c in choices if c != value]
        if not others:
            return value
        if all(isinstance(c, int | float) and not isinstance(c, bool) for c in choices):
            order = sorted(choices)
            i = order.index(value)
            near = [order[j] for j in (i - 1, i + 1) if 0 <= j < len(order)]
            return rng.choice(near)
        return rng.choice(others)
    if isinstance(dist, IntDistribution):
        return _int_step(int(value), dist, rng)
    if isinstance(dist, FloatDistribution):
        return _float_step(float(value), dist, rng)
    return value


def _int_step(value: int, dist: IntDistribution, rng: random.Random) -> int:
    if dist.log:
        moved = int(round(value * math.exp(rng.gauss(0.0, LOG_STEP))))
    else:
        moved = value + rng.choice((-1, 1)) * dist.step
    moved = min(dist.high, max(dist.low, moved))
    moved = dist.low + (moved - dist.low) // dist.step * dist.step
    if moved == value:  # at a bound: step the other way
        moved = min(
            dist.high, max(dist.low, value + (dist.step if value == dist.low else -dist.step))
        )
    return moved


def _float_step(value: float, dist: FloatDistribution, rng: random.Random) -> float:
    if dist.log:
        moved = value * math.exp(rng.gauss(0.0, LOG_STEP))
    else:
        moved = value + rng.gauss(0.0, LINEAR_STEP * (dist.high - dist.low))
    moved = min(dist.high, max(dist.low, moved))
    if dist.step:
        moved = dist.low + round((moved - dist.low) / dist.step) * dist.step
        moved = min(dist.high, moved)
    return moved
