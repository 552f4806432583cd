"""Multi-branch blocks: GoogLeNet inception (Szegedy et al. 2015), the factorized Inception v3
forms (Szegedy et al. 2016) and SqueezeNet fire modules (Iandola et al. 2016). Branch outputs
are concatenated along channels, so the output channels are derived from the options."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from search_spaces.blocks.base import Block, Opt, register
from search_spaces.layers import get_pool

__all__ = ["Inception", "InceptionV3", "InceptionReduction", "Fire"]

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
    """Factorized inception (Inception v3). ``form`` a: the 5x5 of branch 3 as two 3x3
    (branch 2's conv is ``b2_kernel``; torchvision's Mixed_5b-d use 5); b: an n x n as
    1 x n then n x 1 (``kernel`` n), at the reduced width until each branch's last conv;
    c: expanded filter bank, the last conv of branches 2 and 3 split into parallel per-axis
    1x3 / 3x1 convs. Average-pool branch."""

    OPTIONS = {
        "form": Opt("a", "str", choices=("a", "b", "c")),
        "kernel": Opt(7, "int", 1),
        "b2_kernel": Opt(3, "int", 1),
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
        b2_kernel=3,
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
            br2 = [self.cna(b2_red, b2, b2_kernel)]
            br3 = [self.cna(b3_red, b3, 3), self.cna(b3, b3, 3)]
        elif form == "b":  # torchvision's InceptionC: the reduced width until the last conv
            br2 = [
                self.cna(b2_red, b2 if i == d - 1 else b2_red, _axis(kernel, d - 1 - i, d))
                for i in range(d)
            ]
            br3 = [
                self.cna(b3_red, b3 if i == 2 * d - 1 else b3_red, _axis(kernel, i % d, d))
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


@register("inception_reduction")
class InceptionReduction(_Branches):
    """Inception v3's grid reduction (Szegedy et al. 2016, figure 10; torchvision's
    InceptionB / InceptionD): strided valid 3x3 convs beside a strided 3x3 max pool, so the
    map shrinks while the channels grow. Branch 1: [1x1 ``b1_red``] -> 3x3/s ``b1``; branch 2:
    1x1 ``b2_red`` -> (form a: 3x3 ``b2``; form b: 1 x n then n x 1 at ``b2_red``, ``kernel``
    n) -> 3x3/s ``b2``; branch 3: 3x3/s max pool. Out: b1 + b2 + in. ``valid`` (the paper's
    and torchvision's): the strided 3x3 convs and the pool are unpadded, so a side n becomes
    (n - 3) // s + 1; ``valid: false`` pads them by 1 (ceil(n / s), as every other block)."""

    OPTIONS = {
        "form": Opt("a", "str", choices=("a", "b")),
        "kernel": Opt(7, "int", 1),
        "b1_red": Opt(0, "int", 0),
        "b1": Opt(384, "int", 1),
        "b2_red": Opt(64, "int", 1),
        "b2": Opt(96, "int", 1),
        "valid": Opt(True, "bool"),
    }
    CHANNEL_KEYS = ("b1_red", "b1", "b2_red", "b2")
    NEEDS_STRIDE_1 = False  # it is the downsampling

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 2,
        *,
        form="a",
        kernel=7,
        b1_red=0,
        b1=384,
        b2_red=64,
        b2=96,
        valid=True,
        **common: Any,
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        d, pad = self.dims, 0 if valid else 1
        br1 = [self.cna(in_chs, b1_red, 1)] if b1_red else []
        br1.append(self.cna(b1_red or in_chs, b1, 3, stride, padding=pad))
        if form == "a":
            mid, last_in = [self.cna(b2_red, b2, 3)], b2
        else:
            mid = [self.cna(b2_red, b2_red, _axis(kernel, d - 1 - i, d)) for i in range(d)]
            last_in = b2_red
        self.branches = nn.ModuleList(
            [
                nn.Sequential(*br1),
                nn.Sequential(
                    self.cna(in_chs, b2_red, 1), *mid, self.cna(last_in, b2, 3, stride, padding=pad)
                ),
                get_pool("max", d, 3, stride, pad),
            ]
        )

    @classmethod
    def out_channels(cls, in_chs, opts, dims):
        return opts["b1"] + opts["b2"] + in_chs

    @classmethod
    def min_size(cls, opts, dims):
        return 3 if opts["valid"] else 1

    @classmethod
    def out_size(cls, size, stride, opts, dims):
        if not opts["valid"]:
            return super().out_size(size, stride, opts, dims)
        return [(n - 3) // stride + 1 for n in size]

    @classmethod
    def check(cls, in_chs, out_chs, stride, opts, dims):
        if opts["form"] == "b" and dims < 2:
            return [("form", "form 'b' factorizes per axis and needs dims >= 2")]
        return []


@register("fire")
class Fire(_Branches):
    """SqueezeNet fire module: 1x1 squeeze, then parallel 1x1 (``e1``) and 3x3 (``e3``) expand
    convs concatenated; each conv with norm / act. ``bypass`` (Iandola et al. 2016, section
    6): ``simple`` adds the input where it has the output's channels (identity) and nothing
    elsewhere, as the paper's simple bypass skips the modules that change the width;
    ``complex`` adds it everywhere, through a 1x1 conv + norm where the width changes."""

    OPTIONS = {
        "squeeze": Opt(16, "int", 1),
        "e1": CH,
        "e3": CH,
        "bypass": Opt("none", "str", choices=("none", "simple", "complex")),
    }
    CHANNEL_KEYS = ("squeeze", "e1", "e3")

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        squeeze=16,
        e1=64,
        e3=64,
        bypass="none",
        **common: Any,
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        self.squeeze = self.cna(in_chs, squeeze, 1)
        self.branches = nn.ModuleList([self.cna(squeeze, e1, 1), self.cna(squeeze, e3, 3)])
        self.bypass: nn.Module | None = None
        same = in_chs == e1 + e3
        if bypass == "complex" or (bypass == "simple" and same):
            self.bypass = nn.Identity() if same else self.cna(in_chs, e1 + e3, 1, act=False)

    @classmethod
    def out_channels(cls, in_chs, opts, dims):
        return opts["e1"] + opts["e3"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(self.squeeze(x))
        return out if self.bypass is None else out + self.bypass(x)
