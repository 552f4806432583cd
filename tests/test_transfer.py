"""nas.retrain.transfer's pieces without a search: which weights are copied, what is frozen."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nas.core.errors import UsageError
from nas.retrain.transfer import Source, freeze, load_matching, parse_freeze
from search_spaces import build, load_spec

SPEC = {
    "version": 1,
    "input": {"dims": 2, "channels": 1, "size": [8, 8]},
    "stem": [{"type": "conv", "out": 8, "kernel": 3}],
    "stages": [
        {"block": {"type": "basic"}, "out": 8},
        {"block": {"type": "basic"}, "out": 16, "stride": 2},
    ],
}


def _source(spec: dict, classes: int = 10) -> Source:
    torch.manual_seed(1)
    return Source(Path("ckpt.pt"), spec, build(spec, classes).state_dict(), None, classes)


def test_matching_layers_are_copied_and_a_new_head_is_left_alone() -> None:
    source = _source(load_spec(SPEC))
    torch.manual_seed(2)
    model = build(load_spec(SPEC), 4)  # other classes: a new head
    head_before = model.head.fc[-1].weight.clone()
    assert load_matching(model, source) == ["stem", "stages.0", "stages.1"]
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in source.state_dict.items() if "head" not in k)
    assert torch.equal(model.head.fc[-1].weight, head_before)


def test_a_wider_second_stage_keeps_the_first_and_a_stemless_network_its_first_stage() -> None:
    wider = copy.deepcopy(SPEC)
    wider["stages"][1]["out"] = 32
    assert load_matching(build(load_spec(wider), 4), _source(load_spec(SPEC))) == [
        "stem",
        "stages.0",
    ]
    stemless = {k: v for k, v in SPEC.items() if k != "stem"}
    stemless["stages"] = [{"block": {"type": "conv"}, "out": 8}, *SPEC["stages"]]
    assert "stages.0" in load_matching(build(load_spec(stemless), 3), _source(load_spec(stemless)))


def test_nothing_in_common_is_refused() -> None:
    other = copy.deepcopy(SPEC)
    other["stem"][0]["out"] = 16
    with pytest.raises(UsageError, match="its first layers \\(stem\\) do not match"):
        load_matching(build(load_spec(other), 4), _source(load_spec(SPEC)))


def test_freeze() -> None:
    assert parse_freeze("stem,stages:1") == (True, 1) and parse_freeze(None) == (False, 0)
    with pytest.raises(UsageError, match="--freeze 'head'"):
        parse_freeze("head")
    model = build(load_spec(SPEC), 4)
    n = freeze(model, True, 1)
    assert n == len(list(model.stem.parameters())) + len(list(model.stages[0].parameters()))
    assert not any(p.requires_grad for p in model.stages[0].parameters())
    assert all(p.requires_grad for p in model.stages[1].parameters())
    with pytest.raises(UsageError, match="--freeze stages:3: the network has 2 stages"):
        freeze(model, False, 3)
