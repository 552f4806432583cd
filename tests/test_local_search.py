"""AroundIncumbent: mutations stay inside the space and change one decision of a good
parent; its population is the study (so resume keeps it); only public Optuna API."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import optuna
import pytest

from nas.driver.local_search import AroundIncumbent, contains, neighbour

optuna.logging.set_verbosity(optuna.logging.WARNING)
WIDTHS = [8, 16, 32, 64, 128]
BLOCKS = ["basic", "bottleneck", "inverted"]


def space(trial: optuna.Trial) -> float:
    """A small define-by-run space with a known optimum (width 64, bottleneck, lr 0.05,
    depth 3, expansion 4 when inverted) and a conditional decision."""
    width = trial.suggest_categorical("width", WIDTHS)
    block = trial.suggest_categorical("block", BLOCKS)
    depth = trial.suggest_int("depth", 1, 6)
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    score = -abs(math.log2(width) - 6) - (block != "bottleneck") - abs(depth - 3) * 0.5
    score -= abs(math.log10(lr) - math.log10(0.05))
    if block == "inverted":
        score -= abs(trial.suggest_int("expansion", 2, 8, step=2) - 4) * 0.25
    return score


def _study(seed: int, storage: str | None = None, name: str | None = None, explore=0.3):
    sampler = AroundIncumbent(optuna.samplers.RandomSampler(seed=seed), seed=seed, explore=explore)
    return optuna.create_study(
        direction="maximize", sampler=sampler, storage=storage, study_name=name,
        load_if_exists=True,
    )  # fmt: skip


def test_every_proposal_is_inside_the_space():
    study = _study(0)
    study.optimize(space, n_trials=80)
    for t in study.trials:
        for name, value in t.params.items():
            assert contains(t.distributions[name], value), (t.number, name, value)


def test_a_mutation_changes_one_decision_of_a_ranked_parent():
    study = _study(1, explore=0.0)
    study.optimize(space, n_trials=40)
    trials = study.trials
    for t in trials[10:]:
        earlier = [p for p in trials[: t.number] if p.state == optuna.trial.TrialState.COMPLETE]
        closest = min(
            sum(p.params.get(k) != v for k, v in t.params.items() if k in p.params) for p in earlier
        )
        assert closest <= 1, (t.number, t.params)


def test_neighbours_are_near_and_different():
    import random

    rng = random.Random(0)
    widths = optuna.distributions.CategoricalDistribution(WIDTHS)
    assert {neighbour(32, widths, rng) for _ in range(50)} == {16, 64}
    assert {neighbour(8, widths, rng) for _ in range(20)} == {16}
    depth = optuna.distributions.IntDistribution(1, 6)
    assert all(neighbour(6, depth, rng) == 5 for _ in range(10))
    lr = optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)
    moved = [neighbour(0.01, lr, rng) for _ in range(200)]
    assert all(1e-4 <= m <= 1.0 for m in moved) and 0.003 < sorted(moved)[100] < 0.03


def test_resume_keeps_the_population(tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    first = _study(2, url, "s")
    first.optimize(space, n_trials=30)
    ranked = [t.number for t in first.sampler.ranked(first)]
    again = _study(3, url, "s")  # a new driver, a new sampler, the same study
    assert [t.number for t in again.sampler.ranked(again)] == ranked
    again.optimize(space, n_trials=5)
    assert len(again.trials) == 35


def test_ranks_by_fidelity_reached_then_value():
    study = optuna.create_study(direction="maximize", sampler=AroundIncumbent(
        optuna.samplers.RandomSampler(seed=0), seed=0))  # fmt: skip
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for x, steps, state in [(0.9, {1: 0.9}, "PRUNED"), (0.5, {1: 0.4, 9: 0.5}, "COMPLETE"),
                            (0.7, {1: 0.7, 3: 0.8}, "PRUNED")]:  # fmt: skip
        state = optuna.trial.TrialState[state]
        study.add_trial(optuna.trial.create_trial(
            params={"x": x}, distributions=dist, state=state, intermediate_values=steps,
            value=x if state == optuna.trial.TrialState.COMPLETE else None))  # fmt: skip
    assert [t.params["x"] for t in study.sampler.ranked(study)] == [0.5, 0.7, 0.9]


def test_beats_random_sampling_on_a_small_space():
    """Seeded, so deterministic: over three seeds local search's best is higher."""
    ours, theirs = [], []
    for seed in range(3):
        study = _study(seed)
        study.optimize(space, n_trials=60)
        ours.append(study.best_value)
        rand = optuna.create_study(direction="maximize",
                                   sampler=optuna.samplers.RandomSampler(seed=seed))  # fmt: skip
        rand.optimize(space, n_trials=60)
        theirs.append(rand.best_value)
    assert sum(ours) > sum(theirs), (ours, theirs)


def test_multi_objective_studies_only_explore():
    sampler = AroundIncumbent(optuna.samplers.RandomSampler(seed=0), seed=0, explore=0.0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)), 20)
    assert sampler.ranked(study) == []


def test_bad_explore_share_is_named():
    with pytest.raises(ValueError, match="explore=1.5"):
        AroundIncumbent(optuna.samplers.RandomSampler(), explore=1.5)


def test_uses_no_private_optuna_attribute():
    source = Path(__file__).resolve().parents[1] / "nas" / "driver" / "local_search.py"
    private = [
        node.attr
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    ]
    assert not private, private
