"""The search's plan (pure): budget, data size, per-sample cost and workers -> rungs."""

from __future__ import annotations

import pytest

from nas.driver.plan import (
    EPOCH_CHOICES,
    ETA,
    MAX_EPOCHS,
    MIN_CONFIGS,
    MIN_FULL,
    MIN_RANK_EPOCHS,
    SAMPLE_CHOICES,
    Plan,
    affordable_seconds_per_sample,
    fixed_plan,
    make_plan,
    report_points,
)


def plan(**kw) -> Plan:
    args = {"budget_seconds": 300, "train_size": 7200, "workers": 2,
            "seconds_per_sample": 0.002, "val_size": 800} | kw  # fmt: skip
    return make_plan(**args)


def test_rungs_grow_by_eta_and_end_at_full_fidelity():
    p = plan()
    assert p.rungs[-1] == p.max_samples and p.rungs[0] == p.grace_samples
    assert all(b == a * ETA for a, b in zip(p.rungs, p.rungs[1:], strict=False))
    assert all(a >= b for a, b in zip(p.configs, p.configs[1:], strict=False))
    assert p.configs[0] >= MIN_CONFIGS and p.configs[-1] >= MIN_FULL


def test_a_bigger_budget_buys_a_higher_fidelity():
    small, large = plan(budget_seconds=120), plan(budget_seconds=3600)
    assert large.max_samples > small.max_samples


def test_more_workers_or_cheaper_samples_buy_a_higher_fidelity():
    base = plan(budget_seconds=120)
    assert plan(budget_seconds=120, workers=8).max_samples > base.max_samples
    assert plan(budget_seconds=120, seconds_per_sample=0.0002).max_samples > base.max_samples


def test_large_data_trains_below_one_epoch_at_the_lowest_rung():
    p = plan(budget_seconds=600, train_size=54000, seconds_per_sample=0.001, val_size=6000)
    assert p.grace_samples < 54000 and p.configs[0] >= MIN_CONFIGS
    assert p.report_at[0] == p.grace_samples  # ASHA's first rung is a report point


def test_small_data_with_a_generous_budget_takes_the_largest_sample_choice():
    p = plan(budget_seconds=3600, train_size=150, seconds_per_sample=0.0005, val_size=30)
    assert p.max_samples == pytest.approx(max(SAMPLE_CHOICES), rel=0.01)
    assert p.max_epochs <= MAX_EPOCHS


def test_a_budget_too_small_for_the_bars_takes_the_cheapest_fidelity():
    p = plan(budget_seconds=10, seconds_per_sample=0.05)
    assert p.configs[0] < MIN_CONFIGS and p.max_epochs == min(EPOCH_CHOICES)


def test_report_points_cover_rungs_and_whole_epochs():
    points = report_points([100, 300, 900], train_size=250)
    assert {100, 300, 900} <= set(points) and 500 in points and 750 in points
    assert 250 not in points  # within a quarter epoch of the rung at 300


def test_fixed_plan_reports_every_epoch_and_round_trips():
    p = fixed_plan(12, 2, train_size=1000)
    assert p.max_samples == 12000 and p.grace_samples == 2000
    assert p.report_at == tuple(range(1000, 12001, 1000))
    assert Plan.from_json(p.to_json()) == p
    assert "--epochs" in p.describe()


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="workers=0"):
        plan(workers=0)


def test_small_data_is_evaluated_over_folds():
    from nas.driver.plan import MAX_FOLDS, SMALL_DATA, folds_for

    assert folds_for(50, smallest_class=24) == MAX_FOLDS
    assert folds_for(40, smallest_class=3) == 3  # a class must appear in every fold
    assert folds_for(40, smallest_class=1) == 1
    assert folds_for(SMALL_DATA, smallest_class=100) == 1


def test_tiny_data_trains_many_epochs_and_folds_cost_k_times():
    one = plan(budget_seconds=180, train_size=40, seconds_per_sample=0.0003, val_size=10)
    five = plan(budget_seconds=180, train_size=40, seconds_per_sample=0.0003, val_size=10, folds=5)
    assert one.grace_samples >= 1024 and one.max_epochs > 100  # far more than 12 epochs
    assert five.max_samples <= one.max_samples and five.folds == 5
    assert "5 folds" in five.describe()
    assert len(five.report_at) <= len(five.rungs) + 16  # a curve, not a report per epoch


def test_retrain_length_has_a_floor_in_steps():
    from nas.retrain.run import MIN_RETRAIN_STEPS, default_epochs

    saved = {"config": {"epochs": None}, "plan": {"max_samples": 5000, "train_size": 1000}}
    assert default_epochs(saved, train_size=60000, batch_size=128) == 20
    tiny = default_epochs(saved, train_size=50, batch_size=32)
    assert tiny * (50 // 32) >= MIN_RETRAIN_STEPS
    long = {"config": {"epochs": 30}}
    assert default_epochs(long, train_size=60000, batch_size=128) == 60


FASHION = {"budget_seconds": 600, "train_size": 54000, "val_size": 6000}


def test_affordable_cost_is_the_most_that_ranks_on_a_whole_epoch():
    cost = affordable_seconds_per_sample(workers=2, **FASHION)
    at = plan(seconds_per_sample=cost, **FASHION)
    assert at.max_epochs == pytest.approx(MIN_RANK_EPOCHS, rel=0.01)
    assert at.configs[0] >= MIN_CONFIGS and at.configs[-1] >= MIN_FULL
    assert plan(seconds_per_sample=cost * 1.1, **FASHION).max_epochs < MIN_RANK_EPOCHS
    assert affordable_seconds_per_sample(workers=8, **FASHION) > cost


def test_up_to_one_epoch_fewer_rungs_bring_more_configurations_to_the_top():
    # Fashion-MNIST at 1.58 ms: four rungs (2,000 .. 54,000 samples) need 108 configurations
    # for 4 at the top; three rungs need 36 and fit in 10 minutes of 2 workers
    p = plan(seconds_per_sample=0.00158, **FASHION)
    assert p.rungs == (6000, 18000, 54000) and p.configs[-1] >= MIN_FULL
    # above one epoch the ladder keeps the most rungs (small data plans as before)
    small = plan(budget_seconds=180, train_size=1150, val_size=288, folds=5,
                 seconds_per_sample=0.0001)  # fmt: skip
    assert len(small.rungs) == 3 and small.max_samples == 16380


def test_a_macs_cap_round_trips_and_is_described():
    p = Plan.from_json({**plan(**FASHION).to_json(), "max_macs": 4_500_000})
    assert p.max_macs == 4_500_000 and "up to 4.5 M MACs" in p.describe()
    old = {k: v for k, v in plan().to_json().items() if k != "max_macs"}  # an older search.json
    assert Plan.from_json(old).max_macs is None and "MACs" not in Plan.from_json(old).describe()


def test_the_lowest_rung_trains_enough_steps_at_the_largest_batch():
    from nas.driver.plan import MIN_RUNG_STEPS

    p = plan(budget_seconds=180, train_size=1151, val_size=287, folds=5, batch_size=128,
             seconds_per_sample=0.0011)  # fmt: skip
    assert p.grace_samples >= MIN_RUNG_STEPS * 128
    assert p.configs[0] < MIN_CONFIGS  # the quick start's budget: fewer, trained configurations
    assert f"fewer than {MIN_CONFIGS} configurations" in p.describe()
    assert "at batch 128" in p.describe()


def test_every_shipped_space_draws_batches_at_most_twice_apart():
    import search_spaces

    for name in search_spaces.list_spaces():
        choice = search_spaces.load_space(name).train["batch_size"]
        values = choice.values or (choice.low, choice.high)
        assert max(values) <= 2 * min(values), (name, values)


def test_nsga2_breeds_several_generations_of_what_the_lowest_rung_sees():
    from nas.core.budget import parse_budget
    from nas.driver.search_run import NSGA2_GENERATIONS, NSGA2_POPULATION_RANGE, nsga2_population

    class Cfg:
        budget = parse_budget("10m")

    planned = make_plan(budget_seconds=600, train_size=5_000, workers=1, seconds_per_sample=1e-4,
                        val_size=500, batch_size=64)  # fmt: skip
    seen = planned.configs[0]
    assert nsga2_population(Cfg, planned) == max(
        NSGA2_POPULATION_RANGE[0], min(NSGA2_POPULATION_RANGE[1], seen // NSGA2_GENERATIONS)
    )
    Cfg.budget = parse_budget("40trials")
    fixed = fixed_plan(2, 1, 1_000)
    assert nsga2_population(Cfg, fixed) == 40 // NSGA2_GENERATIONS
