"""Budget parsing: every accepted form and the refusals."""

import pytest

from nas.core.budget import format_seconds, parse_budget
from nas.core.errors import UsageError


@pytest.mark.parametrize(
    ("text", "kind", "amount", "device"),
    [
        ("90s", "wall", 90.0, None),
        ("30m", "wall", 1800.0, None),
        ("2h", "wall", 7200.0, None),
        ("1h30m", "wall", 5400.0, None),
        ("1.5h", "wall", 5400.0, None),
        ("50trials", "trials", 50.0, None),
        ("1trial", "trials", 1.0, None),
        ("4gpu-h", "device", 4 * 3600.0, "gpu"),
        ("2cpu-h", "device", 2 * 3600.0, "cpu"),
        ("0.5gpu-h", "device", 1800.0, "gpu"),
        (" 3M ", "wall", 180.0, None),
    ],
)
def test_accepted_forms(text, kind, amount, device):
    b = parse_budget(text)
    assert (b.kind, b.amount, b.device) == (kind, amount, device)


@pytest.mark.parametrize(
    "text",
    ["banana", "-5m", "", "0s", "0trials", "5", "m5", "3x", "5mm", "0gpu-h", "2tpu-h", "5m banana"],
)
def test_refused_forms_name_the_value(text):
    with pytest.raises(UsageError) as err:
        parse_budget(text)
    assert repr(text) in str(err.value)
    assert "\n" not in str(err.value)


def test_trial_budget_exposes_count_and_remaining():
    b = parse_budget("10trials")
    assert b.trials == 10
    assert b.remaining(4) == 6
    assert b.remaining(12) == 0
    assert parse_budget("2h").trials is None


def test_describe_and_format_seconds():
    assert format_seconds(75) == "1m15s"
    assert format_seconds(3725) == "1h02m05s"
    assert format_seconds(9) == "9s"
    assert parse_budget("2cpu-h").describe(3600) == "1.00 cpu-h"
    assert parse_budget("7trials").describe() == "7 trials"
