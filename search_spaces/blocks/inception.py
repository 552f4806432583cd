"""Multi-branch blocks: GoogLeNet inception (Szegedy et al. 2015), the factorized Inception v3
forms (Szegedy et al. 2016) and SqueezeNet fire modules (Iandola et al. 2016). Branch outputs
are concatenated along channels, so the output channels are derived from the options."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from search_spaces.blocks.base import Block, Opt, register
from search_spaces.layers import get_pool

__all__ = ["Inception", "InceptionV3", "Fire"]

CH = Opt(64, "int", 1)


class _Branches(Block):
    """Runs ``self.branches`` on the same input and concatenates the results."""

    DERIVED_OUT = True
    NEEDS_STRIDE_1 = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], 1)


class _Parallel(nn.ModuleList):
    """Parallel convs on one input, concatenated (Inception v3 form C's split)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(x) for m in self], 1)


def _axis(k: int, axis: int, dims: int) -> tuple[int, ...]:
    return tuple(k if i == axis else 1 for i in range(dims))


@register("inception")
class Inception(_Branches):
    """GoogLeNet inception module: 1x1 | 1x1 reduce -> 3x3 | 1x1 reduce -> ``b3_kernel`` |
    3x3 max pool -> 1x1 projection (torchvision uses a 3x3 in the "5x5" branch)."""

    OPTIONS = {
        "b1": Opt(64, "int", 1),
        "b2_red": Opt(96, "int", 1),
        "b2": Opt(128, "int", 1),
        "b3_red": Opt(16, "int", 1),
        "b3": Opt(32, "int", 1),
        "b3_kernel": Opt(5, "int", 1),
        "pool_proj": Opt(32, "int", 1),
    }
    CHANNEL_KEYS = ("b1", "b2_red", "b2", "b3_red", "b3", "pool_proj")

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        b1=64,
        b2_red=96,
        b2=128,
        b3_red=16,
        b3=32,
        b3_kernel=5,
        pool_proj=32,
        **common: Any,
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        pool = get_pool("max", self.dims, 3, 1, 1, ceil_mode=True)
        self.branches = nn.ModuleList(
            [
                self.cna(in_chs, b1, 1),
                nn.Sequential(self.cna(in_chs, b2_red, 1), self.cna(b2_red, b2, 3)),
                nn.Sequential(self.cna(in_chs, b3_red, 1), self.cna(b3_red, b3, b3_kernel)),
                nn.Sequential(pool, self.cna(in_chs, pool_proj, 1)),
            ]
        )

    @classmethod
    def out_channels(cls, in_chs, opts, dims):
        return opts["b1"] + opts["b2"] + opts["b3"] + opts["pool_proj"]


@register("inception_v3")
class InceptionV3(_Branches):
    """Factorized inception (Inception v3). ``form`` a: the 5x5 as two 3x3; b: an n x n as
    1 x n then n x 1 (``kernel`` n); c: expanded filter bank, the last conv of branches 2 and 3
    split into parallel per-axis 1x3 / 3x1 convs. Average-pool branch."""

    OPTIONS = {
        "form": Opt("a", "str", choices=("a", "b", "c")),
        "kernel": Opt(7, "int", 1),
        "b1": Opt(64, "int", 1),
        "b2_red": Opt(48, "int", 1),
        "b2": Opt(64, "int", 1),
        "b3_red": Opt(64, "int", 1),
        "b3": Opt(96, "int", 1),
        "pool_proj": Opt(32, "int", 1),
    }
    CHANNEL_KEYS = ("b1", "b2_red", "b2", "b3_red", "b3", "pool_proj")

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        form="a",
        kernel=7,
        b1=64,
        b2_red=48,
        b2=64,
        b3_red=64,
        b3=96,
        pool_proj=32,
        **common: Any,
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        d = self.dims
        if form == "a":
            br2 = [self.cna(b2_red, b2, 3)]
            br3 = [self.cna(b3_red, b3, 3), self.cna(b3, b3, 3)]
        elif form == "b":
            br2 = [self.cna(b2_red if i == 0 else b2, b2, _axis(kernel, i, d)) for i in range(d)]
            br3 = [
                self.cna(b3_red if i == 0 else b3, b3, _axis(kernel, i % d, d))
                for i in range(2 * d)
            ]
        else:
            br2 = [_Parallel(self.cna(b2_red, b2, _axis(3, i, d)) for i in range(d))]
            br3 = [
                self.cna(b3_red, b3, 3),
                _Parallel(self.cna(b3, b3, _axis(3, i, d)) for i in range(d)),
            ]
        self.branches = nn.ModuleList(
            [
                self.cna(in_chs, b1, 1),
                nn.Sequential(self.cna(in_chs, b2_red, 1), *br2),
                nn.Sequential(self.cna(in_chs, b3_red, 1), *br3),
                nn.Sequential(get_pool("avg", d, 3, 1, 1), self.cna(in_chs, pool_proj, 1)),
            ]
        )

    @classmethod
    def out_channels(cls, in_chs, opts, dims):
        split = dims if opts["form"] == "c" else 1
        return opts["b1"] + split * (opts["b2"] + opts["b3"]) + opts["pool_proj"]

    @classmethod
    def min_size(cls, opts, dims):
        return 3 if dims == 3 else 1  # its 3x3x3 average pool

    @classmethod
    def check(cls, in_chs, out_chs, stride, opts, dims):
        if opts["form"] in ("b", "c") and dims < 2:
            return [("form", f"form {opts['form']!r} factorizes per axis and needs dims >= 2")]
        return []


@register("fire")
class Fire(_Branches):
    """SqueezeNet fire module: 1x1 squeeze, then parallel 1x1 (``e1``) and 3x3 (``e3``) expand
    convs concatenated; each conv with norm / act."""

    OPTIONS = {"squeeze": Opt(16, "int", 1), "e1": CH, "e3": CH}
    CHANNEL_KEYS = ("squeeze", "e1", "e3")

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, *, squeeze=16, e1=64, e3=64, **common: Any
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        self.squeeze = self.cna(in_chs, squeeze, 1)
        self.branches = nn.ModuleList([self.cna(squeeze, e1, 1), self.cna(squeeze, e3, 3)])

    @classmethod
    def out_channels(cls, in_chs, opts, dims):
        return opts["e1"] + opts["e3"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.squeeze(x))
