"""Warm start: the sampler's inverse round-trips, starting points come first and are not
trained twice."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from search_spaces import spec_id
from search_spaces.inverse import NotExpressible, params_for
from search_spaces.sampler import RandomTrial, sample
from search_spaces.starts import starting_points

INPUTS = [("image", 2, 1, (8, 8)), ("image", 2, 1, (28, 28)), ("image", 2, 3, (32, 32)),
          ("timeseries_1d", 1, 1, (150,)), ("timeseries_1d", 1, 6, (100,))]  # fmt: skip


@pytest.mark.parametrize(("space", "dims", "channels", "size"), INPUTS)
def test_every_starting_point_round_trips_through_the_default_space(space, dims, channels, size):
    points = starting_points(dims, channels, size)
    assert len(points) >= 2
    for name, spec, train in points:
        params = params_for(spec, train, space, num_classes=10)
        drawn, drawn_train = sample(
            optuna.trial.FixedTrial(params), space, dims=dims, channels=channels, size=size,
            num_classes=10,
        )  # fmt: skip
        assert spec_id(drawn) == spec_id({**spec, "name": ""}), name
        assert {k: drawn_train[k] for k in train} == train, name


@pytest.mark.parametrize(
    ("space", "dims", "size"),
    [("image", 2, (28, 28)), ("mobile", 2, (32, 32)), ("residual_dense", 2, (16, 16)),
     ("timeseries_1d", 1, (128,)), ("volume_3d", 3, (16, 16, 16))],
)  # fmt: skip
def test_the_inverse_recovers_what_the_sampler_drew(space, dims, size):
    for seed in range(15):
        trial = RandomTrial(seed)
        try:
            spec, train = sample(trial, space, dims=dims, channels=1, size=size, num_classes=5)
        except ValueError:
            continue  # over the space's limits
        assert params_for(spec, train, space, num_classes=5) == trial.params


def test_what_the_space_cannot_express_is_named():
    _, spec, train = starting_points(2, 1, (28, 28))[0]  # a plain conv network
    with pytest.raises(NotExpressible, match="stage1: block type 'conv' not offered"):
        params_for(spec, train, "residual_dense", num_classes=10)
    wide = {**spec, "stages": [{**spec["stages"][0], "out": 1000}, *spec["stages"][1:]]}
    with pytest.raises(NotExpressible, match="stage1.width: 1000"):
        params_for(wide, train, "image", num_classes=10)


def test_queued_starts_come_first_and_are_not_queued_twice(tmp_path):
    from dataclasses import replace

    from nas.core.budget import parse_budget
    from nas.core.config import DataInfo, SearchConfig
    from nas.driver.warm_start import enqueue

    data = DataInfo("digits", None, 2, 1, (8, 8), 10, 1295, 143)
    cfg = replace(SearchConfig(parse_budget("1m"), "digits", None, "image"), data=data)
    study = optuna.create_study(direction="maximize")
    first = enqueue(study, cfg, "image")
    assert first.queued == ["plain_cnn", "resnet", "mobilenet_v2"] and not first.skipped
    assert enqueue(study, cfg, "image").queued  # asked again (a resume): skipped by Optuna
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["warm_start"] for t in waiting] == first.queued
    trial = study.ask()
    assert trial.user_attrs["warm_start"] == "plain_cnn"


def test_starts_over_the_budget_cap_are_narrowed_to_the_space_widths_or_skipped():
    from dataclasses import replace

    import search_spaces
    from nas.core.budget import parse_budget
    from nas.core.config import DataInfo, SearchConfig
    from nas.driver.plan import fixed_plan
    from nas.driver.warm_start import enqueue

    data = DataInfo("fashion-mnist", None, 2, 1, (28, 28), 10, 54000, 6000)
    cfg = replace(SearchConfig(parse_budget("10m"), "fashion-mnist", None, "image"), data=data)
    macs = {
        name: search_spaces.count(spec, 10).macs
        for name, spec, _ in starting_points(2, 1, (28, 28))
    }
    cap = macs["plain_cnn"] // 3  # half width (a quarter of the MACs) fits, 0.75 does not
    assert macs["resnet"] // 4 > cap  # over the cap at the space's narrowest, 0.5
    plan = replace(fixed_plan(1, 1, 54000, 1), max_macs=cap)
    study = optuna.create_study(direction="maximize")
    started = enqueue(study, cfg, "image", plan)
    assert started.queued[0] == "plain_cnn x0.5"
    assert "resnet" not in " ".join(started.queued)
    assert any(
        note.startswith("resnet: ") and f"> {cap:,}, the most the budget ranks" in note
        and "down to 0.5" in note for note in started.skipped
    )  # fmt: skip
    trial = study.ask()
    spec, _ = sample(trial, "image", dims=2, channels=1, size=(28, 28), num_classes=10)
    assert spec["scaling"]["width"] == 0.5 and search_spaces.count(spec, 10).macs <= cap
    uncapped = enqueue(optuna.create_study(direction="maximize"), cfg, "image")
    assert uncapped.queued == ["plain_cnn", "resnet", "mobilenet_v2"]


def test_a_cap_that_refuses_every_start_keeps_the_cheapest_narrowed_one():
    from dataclasses import replace

    import search_spaces
    from nas.core.budget import parse_budget
    from nas.core.config import DataInfo, SearchConfig
    from nas.driver.define_by_run import OVER_PLAN_CAP, DefineByRun
    from nas.driver.plan import fixed_plan
    from nas.driver.warm_start import enqueue

    data = DataInfo("fashion-mnist", None, 2, 1, (28, 28), 10, 54000, 6000)
    cfg = replace(SearchConfig(parse_budget("10m"), "fashion-mnist", None, "image"), data=data)
    plan = replace(fixed_plan(1, 1, 54000, 1), max_macs=1000)  # below every start
    study = optuna.create_study(direction="maximize")
    started = enqueue(study, cfg, "image", plan)
    assert len(started.queued) == 1 and "kept" in started.queued[0]
    assert len(started.skipped) == 3  # each refused start is still named
    trial = study.ask()
    assert trial.user_attrs[OVER_PLAN_CAP]
    config = DefineByRun(cfg, search_spaces.load_space("image"), data, plan)(trial)
    assert config["rejected"] is None  # the plan's cap does not refuse the one kept start
    assert config["spec"]["scaling"]["width"] == 0.5
