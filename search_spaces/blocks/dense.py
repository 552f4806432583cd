"""DenseNet pieces (Huang et al. 2017): one dense layer (a stage of ``repeats`` layers is a
dense block) and the compressing transition between dense blocks."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from search_spaces.blocks.base import Block, Opt, register
from search_spaces.layers import get_act, get_norm, get_pool

__all__ = ["DenseLayer", "Transition"]


class _PreAct(Block):
    """Pre-activation helper: norm -> act -> conv, as DenseNet orders them."""

    def pre(self, in_chs: int, out_chs: int, kernel: int) -> nn.Sequential:
        return nn.Sequential(
            get_norm(self.norm_name, in_chs, self.dims, **self.norm_kwargs),
            get_act(self.act_name, in_chs),
            self.cna(in_chs, out_chs, kernel, act=False, norm=False, bias=False),
        )


@register("dense")
class DenseLayer(_PreAct):
    """One dense layer: norm-act-1x1 conv to ``bn_size * growth`` (DenseNet-B bottleneck; none
    when ``bn_size`` is 0), norm-act-3x3 conv to ``growth``; the result is concatenated to the
    input, so out = in + growth."""

    OPTIONS = {"growth": Opt(32, "int", 1), "bn_size": Opt(4, "int", 0)}
    CHANNEL_KEYS = ("growth",)
    DERIVED_OUT = True
    NEEDS_STRIDE_1 = True

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, *, growth=32, bn_size=4, **common: Any
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        mid = bn_size * growth
        self.bottleneck = self.pre(in_chs, mid, 1) if bn_size else nn.Identity()
        self.conv = self.pre(mid if bn_size else in_chs, growth, 3)

    @classmethod
    def out_channels(cls, in_chs, opts, dims):
        return in_chs + opts["growth"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(self.bottleneck(x))], 1)


@register("transition")
class Transition(_PreAct):
    """DenseNet transition: norm-act-1x1 conv to ``floor(in * compression)`` channels, then an
    average pool with kernel = stride = the stage stride (none at stride 1)."""

    OPTIONS = {"compression": Opt(0.5, "float", 0.0, 1.0)}
    DERIVED_OUT = True

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, *, compression=0.5, **common: Any
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        self.conv = self.pre(in_chs, out_chs, 1)
        self.pool = get_pool("avg", self.dims, stride, stride) if stride > 1 else nn.Identity()

    @classmethod
    def out_channels(cls, in_chs, opts, dims):
        return max(1, int(math.floor(in_chs * opts["compression"])))

    @classmethod
    def out_size(cls, size, stride, opts, dims):
        return [n // stride for n in size]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))
