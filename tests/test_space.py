"""Space files: every shipped space loads; mistakes are reported with the YAML path."""

from __future__ import annotations

import copy

import pytest
import yaml

from search_spaces.space import (
    SPACES_DIR,
    Space,
    SpaceError,
    default_space_for,
    list_spaces,
    load_space,
)

SHIPPED = ["image", "mobile", "residual_dense", "timeseries_1d", "volume_3d"]


def test_shipped_spaces_are_listed():
    assert set(SHIPPED) <= set(list_spaces())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_space_loads(name):
    space = load_space(name)
    assert isinstance(space, Space)
    assert space.name == name
    assert space.blocks and space.optimizers
    assert load_space(SPACES_DIR / f"{name}.yaml").blocks == space.blocks


def test_default_spaces():
    assert [default_space_for(d) for d in (1, 2, 3)] == ["timeseries_1d", "image", "volume_3d"]
    with pytest.raises(SpaceError, match="dims 4"):
        default_space_for(4)


def test_image_space_covers_the_catalog():
    space = load_space("image")
    types = {b.type for b in space.blocks}
    assert {"conv", "dwsep", "basic", "bottleneck", "dense", "inception", "mbconv"} <= types
    assert {"inverted_residual", "asym", "fire"} <= types
    assert len(space.defaults["norm"].values) >= 4
    assert set(space.optimizers) == {"sgd", "adam", "adamw", "rmsprop"}


def test_mobile_space_has_a_mac_limit():
    assert load_space("mobile").limits["max_macs"]


def test_unknown_name_lists_the_shipped_spaces():
    with pytest.raises(SpaceError) as err:
        load_space("imagenet_huge")
    for name in SHIPPED:
        assert name in str(err.value)


def _image() -> dict:
    return yaml.safe_load((SPACES_DIR / "image.yaml").read_text())


def _load(tmp_path, doc, name="image.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return load_space(path)


def _edit(path, value):
    """A copy of image.yaml with the value at ``path`` (a tuple of keys / indexes) replaced."""
    doc = copy.deepcopy(_image())
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("stages", "blocks", 2, "kernel"),
            "three",
            "image.yaml: stages.blocks[2].kernel: expected a list of odd ints >= 1, got 'three'",
        ),
        (
            ("stages", "blocks", 0, "kernel"),
            [3, 4],
            "image.yaml: stages.blocks[0].kernel[1]: expected an odd int >= 1, got 4",
        ),
        (
            ("stages", "blocks", 0, "kernal"),
            [3],
            "image.yaml: stages.blocks[0].kernal: unknown key",
        ),
        (
            ("stages", "blocks", 1, "type"),
            "resnet",
            "image.yaml: stages.blocks[1].type: expected one",
        ),
        (("stages", "blocks", 4, "growth"), [], "stages.blocks[4].growth: expected a list of ints"),
        (("stages", "count"), [2, 4], "image.yaml: stages.count: expected a range {low, high}"),
        (("stages", "width"), {"low": 64, "high": 16}, "stages.width: low 64 is greater than high"),
        (("defaults", "norm"), ["batch", "weight"], "defaults.norm[1]: expected one of batch"),
        (("head", "dropout"), {"low": 0.0, "high": 1.5}, "head.dropout.high: expected a float in"),
        (
            ("train", "weight_decay"),
            {"low": 0.0, "high": 0.1, "log": True},
            "weight_decay.low: a log",
        ),
        (
            ("train", "optimizer", "adam", "nesterov"),
            [True],
            "train.optimizer.adam.nesterov: only sgd",
        ),
        (("train", "optimizer"), ["sgd", "lbfgs"], "train.optimizer[1]: expected one of sgd"),
        (("train", "batch_size"), [32, 32], "train.batch_size[1]: duplicate value 32"),
        (("dims",), KeyError, "image.yaml: missing required key 'dims'"),
        (("dims",), [4], "image.yaml: dims[0]: expected 1, 2 or 3, got 4"),
        (("stages", "blocks", 3, "label"), "conv", "listed twice"),
    ],
)
def test_mistakes_name_the_yaml_path(tmp_path, path, value, message):
    with pytest.raises(SpaceError) as err:
        _load(tmp_path, _edit(path, value))
    assert message in str(err.value)


def test_error_is_a_value_error(tmp_path):
    with pytest.raises(ValueError):
        _load(tmp_path, _edit(("stages", "repeats"), "two"))


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(SpaceError, match=r"bad\.yaml: not valid YAML \(line 3"):
        _load(tmp_path, "dims: [2]\nstages: {count: [\n", name="bad.yaml")


def test_not_a_mapping(tmp_path):
    with pytest.raises(SpaceError, match="bad.yaml: expected a mapping"):
        _load(tmp_path, "- just\n- a list\n", name="bad.yaml")


def test_missing_file():
    with pytest.raises(SpaceError, match="no such space file"):
        load_space("nowhere/space.yaml")


def test_scalars_are_fixed_and_floats_may_be_written_bare(tmp_path):
    doc = _edit(("train", "weight_decay"), {"low": "1e-5", "high": "1e-3", "log": True})
    doc["stem"]["kernel"] = 3
    space = _load(tmp_path, doc)
    assert space.stem["kernel"].fixed and space.stem["kernel"].values == (3,)
    assert space.train["weight_decay"].low == pytest.approx(1e-5)


def test_shared_option_names(tmp_path):
    """A block option offered with the same choices by every type shares one parameter."""
    space = load_space("image")
    assert space.option_names[("dwsep", "dilation")] == "dilation"  # conv and dwsep: [1, 2]
    assert space.option_names[("mbconv", "se")] == "mbconv.se"  # mbconv offers only 0.25
