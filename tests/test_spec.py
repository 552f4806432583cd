"""Spec validation (errors name the field), canonical JSON, YAML / JSON round-trip, spec_id,
compound scaling."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from search_spaces import (
    SpecError,
    build,
    count,
    dump_spec,
    load_spec,
    load_zoo,
    round_channels,
    scale_depth,
    spec_id,
    spec_to_json,
)
from search_spaces.scaling import compound


def small(**over) -> dict:
    spec = {
        "version": 1,
        "input": {"dims": 2, "channels": 3, "size": [16, 16]},
        "stem": [{"type": "conv", "out": 8, "kernel": 3, "stride": 2}],
        "stages": [
            {"block": {"type": "basic"}, "out": 8, "repeats": 1, "stride": 1},
            {"block": {"type": "inverted_residual", "expansion": 2}, "out": 16, "stride": 2},
        ],
    }
    spec.update(over)
    return spec


def bad(mutate, match: str) -> None:
    spec = small()
    mutate(spec)
    with pytest.raises(SpecError, match=match):
        load_spec(spec)


def test_canonical_fills_defaults() -> None:
    spec = load_spec(small())
    assert spec["defaults"]["act"] == "relu" and spec["head"]["pool"] == "avg"
    block = spec["stages"][1]["block"]
    assert block == {**block, "type": "inverted_residual", "kernel": 3, "se": 0.0, "norm": "batch"}
    assert spec["stages"][1]["repeats"] == 1
    assert spec["scaling"]["width"] == 1.0 and spec["init"]["scheme"] == "default"
    assert load_spec(spec) == spec  # idempotent


def test_error_names_the_field() -> None:
    def zero_expansion(s):
        s["stages"][1]["block"]["expansion"] = 0

    bad(zero_expansion, r"^stages\[1\]\.block\.expansion: must be >= 1, got 0$")


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda s: s.update(version=2), r"^version: must be 1"),
        (lambda s: s.update(colour=1), r"^colour: unknown key"),
        (lambda s: s["input"].update(dims=4), r"^input\.dims: expected 1, 2 or 3"),
        (
            lambda s: s["input"].update(size=[16]),
            r"^input\.size: expected an integer or a list of 2",
        ),
        (lambda s: s["stages"][0]["block"].update(type="nope"), r"^stages\[0\]\.block\.type:"),
        (
            lambda s: s["stages"][0]["block"].update(kernal=3),
            r"^stages\[0\]\.block\.kernal: unknown",
        ),
        (lambda s: s["stages"][0].update(repeats=0), r"^stages\[0\]\.repeats: must be"),
        (
            lambda s: s["stages"][0]["block"].update(act="relu7"),
            r"^stages\[0\]\.block\.act: expected one of",
        ),
        (
            lambda s: s["stages"][0]["block"].update(se=1.5),
            r"^stages\[0\]\.block\.se: must be <= 1",
        ),
        (
            lambda s: s["stages"][0]["block"].update(se=-0.1),
            r"^stages\[0\]\.block\.se: must be >= 0",
        ),
        (lambda s: s["stages"][0].update(out=None), r"^stages\[0\]\.out: required"),
        (lambda s: s["stem"][0].update(out=None), r"^stem\[0\]\.out: required"),
        (
            lambda s: (
                s["defaults"].update(norm="batchnorm")
                if "defaults" in s
                else s.update(defaults={"norm": "bn"})
            ),
            r"^defaults\.norm",
        ),
        (
            lambda s: (
                s["head"].update(dropout=1.0) if "head" in s else s.update(head={"dropout": 1.0})
            ),
            r"^head\.dropout: must be < 1",
        ),
        (lambda s: s.update(stages=[]), r"^stages: expected a non-empty list"),
        (
            lambda s: s.update(stages=[{"block": {"type": "conv", "groups": 3}, "out": 8}]),
            r"^stages\[0\]\.block\.groups: 3 must divide in channels 8",
        ),
        (
            lambda s: s.update(stages=[{"block": {"type": "dense"}, "stride": 2}]),
            r"^stages\[0\]\.stride: block type 'dense' needs stride 1",
        ),
        (
            lambda s: s.update(
                stages=[{"block": {"type": "dense", "growth": 4}, "repeats": 2, "out": 99}]
            ),
            r"^stages\[0\]\.out: a 'dense' stage from 8 channels gives 16, got 99",
        ),
        (
            lambda s: s.update(
                stages=[
                    {
                        "block": {"type": "conv_transpose", "padding_mode": "reflect"},
                        "out": 8,
                        "stride": 2,
                    }
                ]
            ),
            r"^stages\[0\]\.block\.padding_mode: transposed conv supports only zeros",
        ),
        (
            lambda s: s["stages"].extend([{"block": {"type": "pool"}, "stride": 2}] * 4),
            r"^stages\[4\]\.stride: input size \[1, 1\] cannot be downsampled by 2",
        ),
        (
            lambda s: s["stages"].append(
                {"block": {"type": "conv", "kernel": 7, "padding": 0}, "out": 8}
            ),
            r"^stages\[2\]\.block: output size \[-2, -2\]",
        ),
        (
            lambda s: (
                s["scaling"].update(phi=1.0, width=2.0)
                if "scaling" in s
                else s.update(scaling={"phi": 1.0, "width": 2.0})
            ),
            r"^scaling\.phi: give phi or scaling.width",
        ),
    ],
)
def test_invalid_specs_are_rejected(mutate, match: str) -> None:
    bad(mutate, match)


def test_one_d_rejects_spatially_separable() -> None:
    spec = small(input={"dims": 1, "channels": 3, "size": 32})
    spec["stages"][0]["block"] = {"type": "asym"}
    with pytest.raises(SpecError, match=r"^stages\[0\]\.block\.type: 'asym' needs input dims >= 2"):
        load_spec(spec)


def test_round_trip_json_and_yaml(tmp_path) -> None:
    spec = load_spec(small())
    for name in ("a.json", "a.yaml"):
        path = dump_spec(spec, tmp_path / name)
        assert load_spec(path) == spec
    assert json.loads(spec_to_json(spec)) == spec
    assert yaml.safe_load(yaml.safe_dump(spec)) == spec
    with pytest.raises(SpecError, match="a.txt: expected a .json"):
        dump_spec(spec, tmp_path / "a.txt")


def test_load_spec_names_the_file(tmp_path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\ninput: {dims: 5, channels: 3, size: 8}\nstages: []\n")
    with pytest.raises(SpecError, match=r"^broken.yaml: input\.dims"):
        load_spec(path)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")


def test_spec_id_is_stable() -> None:
    spec = small()
    shuffled = json.loads(json.dumps(spec, sort_keys=True))
    explicit = load_spec(spec)
    assert spec_id(spec) == spec_id(shuffled) == spec_id(explicit)
    assert len(spec_id(spec)) == 12 and int(spec_id(spec), 16) >= 0
    other = copy.deepcopy(spec)
    other["stages"][0]["out"] = 16
    assert spec_id(other) != spec_id(spec)
    # pinned: changes to the canonical form must be deliberate (they re-key every stored trial)
    assert spec_id(load_zoo("resnet18")) == "5ed86f7a0b24"  # head.conv, stage aux, se_gate


def test_same_spec_same_architecture() -> None:
    a, b = build(small(), 5), build(json.loads(spec_to_json(small())), 5)
    assert str(a) == str(b)
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]


def test_round_channels_like_timm_make_divisible() -> None:
    assert round_channels(32, 1.0) == 32 and round_channels(3, 1.0) == 3  # identity at 1.0
    assert round_channels(32, 1.1) == 32  # 35.2 -> 32, not more than 10% down
    assert round_channels(20, 0.5) == 16  # 10 -> 8 would lose 20%, so bump up
    assert round_channels(40, 1.1) == 48  # 44 -> 48 (round half up)
    assert round_channels(3, 0.5) == 8  # at least the divisor
    assert scale_depth(3, 1.2) == 4 and scale_depth(1, 1.0) == 1


def test_compound_scaling_applies_at_spec_time() -> None:
    d, w, r = compound(1.0)
    assert (d, w, r) == pytest.approx((1.2, 1.1, 1.15))
    spec = load_spec(small(scaling={"phi": 2.0}))
    assert spec["scaling"]["width"] == pytest.approx(1.21)
    base, scaled = count(small(), 10), count(spec, 10)
    assert scaled.input_shape == [3, 21, 21]  # resolution 1.3225 * 16, recorded and counted
    assert scaled.params > base.params and scaled.macs > base.macs
    model = build(small(scaling={"width": 2.0, "depth": 2.0}), 10)
    assert len(model.stages[0]) == 2 and model.stages[0][0].out_chs == 16


def test_derived_outputs_are_checked_and_written_null() -> None:
    spec = small()
    spec["stages"].append({"block": {"type": "pool"}, "out": 16, "stride": 2})
    canon = load_spec(spec)
    assert canon["stages"][2]["out"] is None
    spec["stages"][2]["out"] = 12
    with pytest.raises(SpecError, match=r"^stages\[2\]\.out: a 'pool' stage from 16 channels"):
        load_spec(spec)
    spec = small(stem=[{"type": "conv", "out": 8}, {"type": "pool", "out": 4, "stride": 2}])
    with pytest.raises(SpecError, match=r"^stem\[1\]\.out: a 'pool' entry from 8 channels gives 8"):
        load_spec(spec)


def test_three_d_average_pool_needs_its_kernel() -> None:
    spec = small(input={"dims": 3, "channels": 3, "size": [2, 8, 8]}, stem=[])
    spec["stages"] = [{"block": {"type": "pool", "kind": "avg", "kernel": 3, "padding": 1}}]
    with pytest.raises(SpecError, match=r"^stages\[0\]\.block: input size \[2, 8, 8\] is smaller"):
        load_spec(spec)


def test_instance_norm_needs_more_than_one_position() -> None:
    spec = small(
        input={"dims": 2, "channels": 3, "size": 2}, stem=[], defaults={"norm": "instance"}
    )
    spec["stages"] = [{"block": {"type": "conv"}, "out": 4, "stride": 2}]
    with pytest.raises(SpecError, match=r"^stages\[0\]\.block\.norm: instance norm needs"):
        load_spec(spec)


def test_plan_predicts_what_build_produces() -> None:
    """Seeded random specs: whatever load_spec accepts builds, trains a step, and has the
    channels and spatial size the plan predicted."""
    import random

    import torch

    from search_spaces.blocks import BLOCKS
    from search_spaces.spec import plan

    torch.set_num_threads(1)
    rng = random.Random(1)
    types = ["conv", "conv_transpose", "dwsep", "basic", "dense", "transition", "inception_v3",
             "mbconv", "fire", "pool"]  # fmt: skip
    accepted = 0
    for _ in range(40):
        dims = rng.choice([1, 2, 3])
        size = [rng.randint(1, 7) for _ in range(dims)]
        stages = []
        for t in rng.sample(types, 2):
            cls = BLOCKS[t]
            block = {"type": t}
            if t == "pool":
                block.update(kind=rng.choice(["avg", "lp", "min"]), kernel=rng.randint(1, 3))
            if t == "conv":
                block.update(kernel=rng.randint(1, 5), padding=rng.choice([None, 0]))
            for key, value in (("growth", 4), ("squeeze", 2), ("e1", 2), ("e3", 2), ("b1", 2)):
                if key in cls.OPTIONS:
                    block[key] = value
            stride = 1 if cls.NEEDS_STRIDE_1 else rng.randint(1, 2)
            out = None if cls.DERIVED_OUT or cls.PRESERVES else 4
            stages.append({"block": block, "out": out, "stride": stride})
        norm = rng.choice(["batch", "instance", "layer"])
        spec = {"version": 1, "input": {"dims": dims, "channels": 4, "size": size},
                "stages": stages, "defaults": {"norm": norm}}  # fmt: skip
        try:
            p = plan(load_spec(spec))
        except SpecError:
            continue
        accepted += 1
        model = build(spec, 3)
        x = torch.randn(2, 4, *size)
        feats = model.stages(model.stem(x))
        assert list(feats.shape[1:]) == [p.head_chs, *p.head_size], spec
        model(x).sum().backward()
    assert accepted >= 15
