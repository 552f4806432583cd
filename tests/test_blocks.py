"""Every block in 1-D, 2-D and 3-D, with every norm / activation / pool kind; small inputs."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from search_spaces import build
from search_spaces.blocks import BLOCKS, get_block
from search_spaces.blocks.base import conv_out
from search_spaces.layers import (
    ACTIVATIONS,
    NORMS,
    POOLS,
    AdaptivePool,
    LpPool,
    StochasticPool,
    adaptive_bins,
    get_act,
    get_norm,
    get_pool,
)

torch.set_num_threads(1)

CH = 8
SIZE = {1: 12, 2: 8, 3: 6}
#: small options per block type, and the stride it is tested with
OPTS: dict[str, tuple[dict, int]] = {
    "conv": ({"kernel": 3, "dilation": 1, "groups": 2}, 2),
    "conv_transpose": ({"kernel": 2}, 2),
    "asym": ({"kernel": 3}, 2),
    "flattened": ({"kernel": 3}, 1),
    "dwsep": ({"kernel": 3}, 2),
    "basic": ({}, 2),
    "bottleneck": ({"expansion": 2, "groups": 2, "base_width": 64}, 2),
    "dense": ({"growth": 4, "bn_size": 2}, 1),
    "transition": ({"compression": 0.5}, 2),
    "inception": ({"b1": 2, "b2_red": 2, "b2": 4, "b3_red": 2, "b3": 2, "pool_proj": 2}, 1),
    "inception_v3": (
        {"form": "a", "b1": 2, "b2_red": 2, "b2": 2, "b3_red": 2, "b3": 2, "pool_proj": 2},
        1,
    ),
    "inverted_residual": ({"expansion": 2}, 1),
    "mbconv": ({"expansion": 2, "kernel": 5}, 2),
    "fire": ({"squeeze": 2, "e1": 4, "e3": 4}, 1),
    "mlpconv": ({"kernel": 3, "layers": 2}, 2),
    "pool": ({"kind": "max", "kernel": 2}, 2),
    "se": ({"ratio": 0.25}, 1),
    "norm_act": ({}, 1),
    "inception_reduction": ({"form": "a", "b1": 4, "b2_red": 2, "b2": 2}, 2),
    "channel_shuffle": ({"groups": 2}, 1),
    "shuffle": ({"kernel": 3}, 2),
    "xception": ({"convs": 2}, 2),
}


def test_every_block_has_test_options() -> None:
    assert set(OPTS) == set(BLOCKS)


def _spec(block: dict, dims: int, stride: int = 1, out: int | None = CH, **defaults) -> dict:
    cls = BLOCKS[block["type"]]
    return {
        "version": 1,
        "input": {"dims": dims, "channels": CH, "size": SIZE[dims]},
        "defaults": defaults,
        "stages": [
            {
                "block": block,
                "out": None if cls.DERIVED_OUT or cls.PRESERVES else out,
                "stride": stride,
                "repeats": 2 if block["type"] == "dense" else 1,
            }
        ],
    }


def _run(spec: dict, train: bool = True) -> torch.Tensor:
    torch.manual_seed(0)
    model = build(spec, 3)
    model.train(train)
    dims = spec["input"]["dims"]
    x = torch.randn(2, CH, *([SIZE[dims]] * dims))
    y = model(x)
    assert y.shape == (2, 3)
    y.sum().backward()
    return y


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("type_name", sorted(OPTS))
def test_block_builds_and_runs(type_name: str, dims: int) -> None:
    cls = BLOCKS[type_name]
    opts, stride = OPTS[type_name]
    if dims < cls.MIN_DIMS:
        pytest.skip("needs dims >= 2")
    _run(_spec({"type": type_name, **opts}, dims, stride))


@pytest.mark.parametrize("form", ["b", "c"])
@pytest.mark.parametrize("dims", [2, 3])
def test_factorized_inception_forms(form: str, dims: int) -> None:
    opts = {"b1": 2, "b2_red": 2, "b2": 2, "b3_red": 2, "b3": 2, "pool_proj": 2, "kernel": 3}
    _run(_spec({"type": "inception_v3", "form": form, **opts}, dims))


@pytest.mark.parametrize("dims", [2, 3])
def test_reduction_form_b_and_shuffle_at_stride_1(dims: int) -> None:
    opts = {"form": "b", "kernel": 3, "b1_red": 2, "b1": 2, "b2_red": 2, "b2": 2}
    _run(_spec({"type": "inception_reduction", **opts}, dims, 2))
    _run(_spec({"type": "shuffle"}, dims, 1))
    _run(_spec({"type": "shuffle"}, dims, 1, out=6))  # a change of width: the two-branch form
    _run(_spec({"type": "inception_reduction", "valid": False}, dims, 2))
    _run(_spec({"type": "xception", "convs": 3, "grow_first": False, "first_act": False}, dims, 1))


def test_channel_shuffle_interleaves_groups() -> None:
    from search_spaces.blocks.shuffle import channel_shuffle

    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]


@pytest.mark.parametrize("bypass", ["simple", "complex"])
def test_fire_bypass(bypass: str) -> None:
    fire = {"type": "fire", "squeeze": 2, "e1": 4, "e3": 4, "bypass": bypass}
    assert isinstance(build(_spec(fire, 2), 3).stages[0][0].bypass, nn.Identity)  # 8 -> 8
    _run(_spec(fire, 2))
    changed = build(_spec({**fire, "e1": 2}, 2), 3).stages[0][0].bypass  # 8 -> 6
    assert (changed is None) == (bypass == "simple")  # complex: a 1x1 conv + norm
    _run(_spec({**fire, "e1": 2}, 2))


def test_mobilenet_v3_se_is_hard_sigmoid_over_expanded_channels() -> None:
    block = {"type": "inverted_residual", "expansion": 3, "se": 0.25, "se_gate": "hard_sigmoid"}
    model = build(_spec(block, 2), 3)
    se = next(m for m in model.modules() if type(m).__name__ == "SqueezeExcite")
    assert isinstance(se.gate, nn.Hardsigmoid) and isinstance(se.act, nn.ReLU)
    assert se.reduce.out_channels == 8  # make_divisible(24 * 0.25 = 6, 8)
    _run(_spec(block, 2))


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("norm", sorted(NORMS))
@pytest.mark.parametrize("position", ["before_act", "after_act"])
def test_norms_in_blocks(norm: str, position: str, dims: int) -> None:
    for block in ({"type": "conv"}, {"type": "basic"}):
        _run(_spec(block, dims, 1, norm=norm, norm_position=position, norm_groups=4))


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_activations_in_blocks(act: str) -> None:
    _run(_spec({"type": "inverted_residual", "expansion": 2}, 2, act=act))


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kind", sorted(POOLS))
def test_pool_kinds(kind: str, dims: int) -> None:
    for train in (True, False):
        _run(
            _spec({"type": "pool", "kind": kind, "kernel": 2, "p": 3.0, "lam": 0.3}, dims, 2), train
        )


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_padding_modes(mode: str) -> None:
    _run(_spec({"type": "conv", "kernel": 3, "dilation": 2}, 2, padding_mode=mode))


@pytest.mark.parametrize("type_name", ["conv", "dwsep", "basic", "bottleneck", "fire", "mlpconv"])
def test_se_is_an_add_on_to_any_block(type_name: str) -> None:
    opts, stride = OPTS[type_name]
    spec = _spec({"type": type_name, **opts, "se": 0.5}, 2, stride)
    model = build(spec, 3)
    assert any("SqueezeExcite" == type(m).__name__ for m in model.modules())
    _run(spec)


def test_registries_pass_modules_through() -> None:
    relu = nn.ReLU()
    assert get_act(relu) is relu
    assert isinstance(get_act("none"), nn.Identity) and isinstance(get_act(None), nn.Identity)
    bn = nn.BatchNorm2d(4)
    assert get_norm(bn, 4, 2) is bn
    assert isinstance(get_norm("none", 4, 2), nn.Identity)
    assert (
        isinstance(get_norm("layer", 4, 2), nn.GroupNorm)
        and get_norm("layer", 4, 2).num_groups == 1
    )
    assert get_norm("group", 12, 2, groups=8).num_groups == 4  # gcd keeps it dividing
    assert get_block(nn.Conv2d) is nn.Conv2d
    pool = nn.MaxPool1d(2)
    assert get_pool(pool, 1, 2, 2) is pool
    with pytest.raises(ValueError, match="unknown block type"):
        get_block("nope")


def test_blocks_share_one_signature() -> None:
    for name, cls in BLOCKS.items():
        opts, stride = OPTS[name]
        block = cls(
            8,
            8,
            stride,
            dims=2,
            act="relu",
            norm="batch",
            norm_position="before_act",
            padding_mode="zeros",
            se=0.0,
            se_gate="sigmoid",
            **opts,
        )
        assert isinstance(block, nn.Module)


def test_output_size_formula() -> None:
    # (W - F + 2P) / S + 1
    assert conv_out(32, 5, 1, 2) == 32
    assert conv_out(227, 11, 4, 0) == 55
    assert conv_out(112, 3, 2, 0, ceil=True) == 56
    x = torch.randn(1, 3, 32, 32)
    assert nn.Conv2d(3, 10, 5, 1, 2)(x).shape[-1] == (32 - 5 + 2 * 2) // 1 + 1


def test_transposed_output_size() -> None:
    # (N - 1) S + F - 2P
    spec = _spec({"type": "conv_transpose", "kernel": 4, "padding": 1}, 2, 2)
    model = build(spec, 3)
    x = torch.randn(1, CH, 8, 8)
    assert model.stages(model.stem(x)).shape[-1] == (8 - 1) * 2 + 4 - 2 * 1


def test_residual_shortcuts() -> None:
    same = BLOCKS["basic"](8, 8, 1, dims=2)
    assert isinstance(same.shortcut, nn.Identity)
    proj = BLOCKS["basic"](8, 16, 2, dims=2)
    assert isinstance(proj.shortcut[0], nn.Conv2d) and proj.shortcut[0].stride == (2, 2)
    forced = BLOCKS["basic"](8, 8, 1, dims=2, shortcut="projection")
    assert not isinstance(forced.shortcut, nn.Identity)


def test_resnext_width() -> None:
    # ResNeXt-50 32x4d, first stage: width = int(256 / 4 * 4 / 64) * 32 = 128
    block = BLOCKS["bottleneck"](64, 256, 1, dims=2, groups=32, base_width=4)
    conv = block.branch[1][0]
    assert conv.in_channels == 128 and conv.groups == 32


def test_inverted_residual_skip_and_linear_bottleneck() -> None:
    ir = BLOCKS["inverted_residual"](8, 8, 1, dims=2, act="relu6")
    assert ir.has_skip and isinstance(ir.project[2], nn.Identity)  # no act after project
    assert isinstance(ir.dw[2], nn.ReLU6)
    assert not BLOCKS["inverted_residual"](8, 16, 1, dims=2).has_skip
    mb = BLOCKS["mbconv"](16, 16, 1, dims=2, expansion=6, se=0.25, drop_path=0.1)
    assert mb.se.reduce.out_channels == 4  # squeeze = block input / 4 (EfficientNet)


def test_dwsep_xception_form_has_nothing_between() -> None:
    block = BLOCKS["dwsep"](8, 16, 1, dims=2, mid_norm=False, mid_act=False)
    assert isinstance(block.dw[1], nn.Identity) and isinstance(block.dw[2], nn.Identity)


def test_stochastic_pool_train_samples_eval_weights() -> None:
    pool = StochasticPool(2, 2, 2)
    x = torch.tensor([[[[1.0, 3.0], [0.0, 0.0]]]])
    pool.eval()
    assert torch.allclose(pool(x), torch.tensor([[[[(1 * 1 + 3 * 3) / 4.0]]]]))
    pool.train()
    torch.manual_seed(0)
    assert {pool(x).item() for _ in range(30)} <= {1.0, 3.0}
    assert pool(torch.zeros(1, 1, 2, 2)).item() == 0.0


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_stochastic_pool_inference_rule_is_the_window_expectation(dims: int) -> None:
    """Eval output = sum(p_i a_i) over each (zero-padded) window, p_i = a_i / sum(a)."""
    torch.manual_seed(dims)
    x = torch.randn(2, 3, *([7] * dims))
    pool = StochasticPool(dims, 3, 2, 1).eval()
    a = torch.nn.functional.pad(x.clamp_min(0), [1] * (2 * dims))
    for i in range(dims):
        a = a.unfold(2 + i, 3, 2)
    w = a.flatten(-dims)
    want = (w * w).sum(-1) / w.sum(-1).clamp_min(1e-12)
    assert torch.allclose(pool(x), want, atol=1e-6)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize(("size", "out"), [(3, 2), (5, 4), (7, 3), (8, 4), (6, 1)])
def test_adaptive_pool_traced_bins_equal_pytorch(dims: int, kind: str, size: int, out: int) -> None:
    """The traced form (slices or a plain pool) is PyTorch's adaptive pool, bin for bin."""
    torch.manual_seed(size)
    pool = AdaptivePool(kind, dims, out)
    x = torch.randn(2, 3, *([size] * dims))
    traced = torch.jit.trace(pool, (x,), check_trace=False)
    assert torch.allclose(traced(x), pool(x), atol=1e-6)
    assert pool(x).shape == (2, 3, *([out] * dims))


@pytest.mark.parametrize("norm", ["group", "layer", "instance"])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_group_and_instance_norms_are_accurate_on_near_constant_groups(norm, dims) -> None:
    """A near-constant channel with a large mean: float32 output agrees with float64."""
    torch.manual_seed(0)
    x = 50.0 + 1e-3 * torch.randn(2, 8, *([2] * dims))
    m = get_norm(norm, 8, dims, groups=8).eval()
    exact = copy.deepcopy(m).double()(x.double())
    assert torch.allclose(m(x).double(), exact, atol=1e-4)  # plain PyTorch: ~1e-3


def test_adaptive_bins_follow_pytorch_rule() -> None:
    assert adaptive_bins(3, 2) == [(0, 2), (1, 3)]
    assert adaptive_bins(5, 4) == [(0, 2), (1, 3), (2, 4), (3, 5)]
    assert adaptive_bins(8, 4) == [(0, 2), (2, 4), (4, 6), (6, 8)]


def test_min_lp_mixed_pools() -> None:
    x = torch.rand(1, 2, 4, 4) + 0.1
    assert torch.allclose(get_pool("min", 2, 2, 2)(x), -nn.MaxPool2d(2)(-x))
    assert torch.allclose(LpPool(2, 2, 2, p=2.0)(x), nn.LPPool2d(2, 2, 2)(x), atol=1e-5)
    mixed = get_pool("mixed", 2, 2, 2, lam=0.25)(x)
    expect = 0.25 * nn.MaxPool2d(2)(x) + 0.75 * nn.AvgPool2d(2)(x)
    assert torch.allclose(mixed, expect)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("pool", ["avg", "max", "flatten", "spp"])
def test_heads(pool: str, dims: int) -> None:
    spec = _spec({"type": "conv"}, dims, 2)
    spec["head"] = {"pool": pool, "hidden": [6], "dropout": 0.2, "spp_levels": [1, 2]}
    _run(spec)
    spec["head"] = {"pool": pool if pool in ("avg", "max") else "avg", "classifier": "conv"}
    _run(spec)


@pytest.mark.parametrize("scheme", ["default", "kaiming", "xavier"])
def test_init_schemes_and_zero_init_residual(scheme: str) -> None:
    spec = _spec({"type": "basic"}, 2, 1)
    spec["stages"].append({"block": {"type": "mbconv", "expansion": 2}, "out": CH})
    spec["init"] = {"scheme": scheme, "zero_init_residual": True}
    model = build(spec, 3)
    basic, mbconv = model.stages[0][0], model.stages[1][0]
    assert torch.count_nonzero(basic.branch[-1].norm.weight) == 0
    assert torch.count_nonzero(mbconv.project.norm.weight) == 0
    assert torch.count_nonzero(basic.branch[0].norm.weight) == CH  # only the last norm
    _run(spec)
