"""Cost model: the textbook worked examples, totals, per-layer rows and input overrides."""

from __future__ import annotations

import json

import pytest

from search_spaces import CostReport, SpecError, count


def conv_spec(channels: int, size: int, convs: list[dict]) -> dict:
    return {
        "version": 1,
        "input": {"dims": 2, "channels": channels, "size": size},
        "defaults": {"norm": "none"},
        "stages": [
            {
                "out": c["out"],
                "block": {"type": "conv", **{k: v for k, v in c.items() if k != "out"}},
            }
            for c in convs
        ],
    }


def conv_rows(report: CostReport) -> list[dict]:
    return [row for row in report.layers if row["type"] == "Conv2d"]


def test_ten_5x5_filters_on_32x32x3() -> None:
    report = count(conv_spec(3, 32, [{"out": 10, "kernel": 5, "padding": 2, "bias": True}]), 2)
    (row,) = conv_rows(report)
    assert row["out_shape"] == [10, 32, 32]
    assert row["params"] == 760  # 10 * (5 * 5 * 3 + 1)


def test_one_by_one_bottleneck_example() -> None:
    direct = count(conv_spec(192, 28, [{"out": 32, "kernel": 5, "bias": False}]), 2)
    reduced = count(
        conv_spec(
            192,
            28,
            [{"out": 16, "kernel": 1, "bias": False}, {"out": 32, "kernel": 5, "bias": False}],
        ),
        2,
    )
    assert sum(r["params"] for r in conv_rows(direct)) == 153_600
    assert sum(r["macs"] for r in conv_rows(direct)) == 120_422_400
    assert sum(r["params"] for r in conv_rows(reduced)) == 15_872
    assert sum(r["macs"] for r in conv_rows(reduced)) == 12_443_648


def test_totals_and_rows_agree() -> None:
    report = count(conv_spec(3, 16, [{"out": 8, "kernel": 3}, {"out": 8, "kernel": 3}]), 5)
    assert report.params == sum(r["params"] for r in report.layers)
    assert report.macs == sum(r["macs"] for r in report.layers)
    assert report.activation_bytes > 0
    assert report.layers[-1]["out_shape"] == [5]
    data = json.loads(json.dumps(report.to_dict()))
    assert isinstance(data["params"], int) and isinstance(data["macs"], int)


def test_input_shape_override_and_resolution() -> None:
    spec = conv_spec(3, 16, [{"out": 8, "kernel": 3}])
    base = count(spec, 2)
    bigger = count(spec, 2, input_shape=(3, 32, 32))
    assert bigger.macs == pytest.approx(4 * base.macs, rel=0.01)
    assert bigger.params == base.params
    scaled = count({**spec, "scaling": {"resolution": 2.0}}, 2)
    assert scaled.input_shape == [3, 32, 32] and scaled.macs == bigger.macs
    with pytest.raises(SpecError, match="input_shape: expected 3 channels"):
        count(spec, 2, input_shape=(1, 16, 16))


def test_transposed_and_grouped_macs() -> None:
    spec = {
        "version": 1,
        "input": {"dims": 1, "channels": 4, "size": 8},
        "defaults": {"norm": "none"},
        "stages": [
            {"block": {"type": "conv", "kernel": 3, "groups": 2, "bias": False}, "out": 4},
            {
                "block": {"type": "conv_transpose", "kernel": 2, "bias": False},
                "out": 4,
                "stride": 2,
            },
        ],
    }
    rows = count(spec, 2).layers
    assert [r["type"] for r in rows][:2] == ["Conv1d", "ReLU"]  # no empty stem row
    rows = [r for r in rows if r["macs"]]
    assert rows[0]["macs"] == 8 * 4 * (4 // 2) * 3  # out elements * in/groups * kernel
    assert rows[1]["macs"] == 8 * 4 * 4 * 2  # in elements * out * kernel
    assert rows[1]["out_shape"] == [4, 16]


def test_a_spec_is_counted_once_and_each_caller_gets_its_own_report(monkeypatch) -> None:
    """The search counts a spec when it samples it and again for its MLflow summary."""
    from search_spaces import cost

    built = []
    real = cost._count
    monkeypatch.setattr(cost, "_count", lambda *a: built.append(a) or real(*a))
    spec = conv_spec(3, 17, [{"out": 7, "kernel": 3, "padding": 1}])
    first = count(spec, 3)
    first.layers[0]["params"] = -1  # a caller that edits its report edits only its copy
    again = count(json.loads(json.dumps(spec)), 3)
    other = count(spec, 4)  # another head is another count
    assert len(built) == 2
    assert again.params == first.params and again.layers[0]["params"] != -1
    assert other.params != again.params
