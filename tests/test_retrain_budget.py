"""``nas retrain --budget DURATION``: epochs planned from the network's measured speed."""

from __future__ import annotations

import pytest

import workers
from nas.core.errors import UsageError
from nas.retrain.run import _wall_seconds, epochs_for_budget


@pytest.fixture(scope="module")
def digits():
    return workers.load_dataset("digits", val_fraction=0.0)


def _spec(data):
    from test_export_support import spec_2d

    spec = spec_2d()
    spec["input"] = {"dims": 2, "channels": data.channels, "size": list(data.size)}
    return spec


def test_a_larger_budget_trains_more_epochs(digits, monkeypatch):
    # The speed is the machine's; the arithmetic on it is what is tested here, so one fixed
    # timing stands in for the measurement (a loaded CI box measured 1.6x apart before).
    import workers.calibrate

    monkeypatch.setattr(workers.calibrate, "seconds_per_sample", lambda *a, **k: 2e-5)
    spec, settings = _spec(digits), {"batch_size": 64}
    short = epochs_for_budget(5.0, spec, digits, settings)
    long = epochs_for_budget(50.0, spec, digits, settings)
    assert 1 <= short < long
    assert long == pytest.approx(10 * short, rel=0.05)


def test_the_budget_is_planned_from_a_measured_speed(digits):
    spec, settings = _spec(digits), {"batch_size": 64}
    assert (
        1
        <= epochs_for_budget(5.0, spec, digits, settings)
        <= epochs_for_budget(50.0, spec, digits, settings)
    )


def test_a_budget_too_small_for_an_epoch_trains_one(digits):
    assert epochs_for_budget(1e-6, _spec(digits), digits, {"batch_size": 64}) == 1


@pytest.mark.parametrize("budget", ["20trials", "2cpu-h", "soon"])
def test_only_a_wall_clock_duration_is_accepted(budget):
    with pytest.raises(UsageError, match=f"--budget '{budget}'"):
        _wall_seconds(budget)
