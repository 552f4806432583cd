"""Channel shuffle (Zhang et al. 2018) and the ShuffleNet v2 unit (Ma et al. 2018): the
channels of grouped or split branches are interleaved so the next layer sees all groups."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from search_spaces.blocks.base import Block, Opt, register

__all__ = ["ChannelShuffle", "ShuffleUnit", "channel_shuffle"]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave ``groups`` groups of channels: (g, c/g) -> (c/g, g). One reshape there and
    one back to the input's shape: with ``unflatten`` / ``flatten`` instead, onnxruntime's
    reshape fusion mis-sized a following group norm's reshape under a dynamic batch."""
    size = x.shape
    return x.reshape(size[0], groups, size[1] // groups, -1).transpose(1, 2).reshape(size)


@register("channel_shuffle")
class ChannelShuffle(Block):
    """A stand-alone channel shuffle of ``groups`` groups (after a grouped conv, ShuffleNet v1)."""

    OPTIONS = {"groups": Opt(2, "int", 2)}
    PRESERVES = True
    NEEDS_STRIDE_1 = True

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, *, groups=2, **common: Any
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        self.groups = groups

    @classmethod
    def check(cls, in_chs, out_chs, stride, opts, dims):
        if in_chs % opts["groups"]:
            return [("groups", f"{opts['groups']} must divide the channels {in_chs}")]
        return []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)


@register("shuffle")
class ShuffleUnit(Block):
    """ShuffleNet v2 unit (Ma et al. 2018, figure 3 c/d; torchvision's InvertedResidual).
    Stride 1 with in == out: half the channels pass through, the other half go through
    1x1 -> depthwise kxk (no act) -> 1x1; otherwise (stride > 1, or a change of width) both
    halves come from the whole input, one through depthwise kxk/s -> 1x1, the other through
    1x1 -> depthwise kxk/s -> 1x1. The halves are concatenated and shuffled (2 groups)."""

    OPTIONS = {"kernel": Opt(3, "kernel", 1)}

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, *, kernel=3, **common: Any
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        half = self.half = out_chs // 2
        split = stride == 1 and in_chs == out_chs
        src = half if split else in_chs
        self.branch1 = (
            None
            if split
            else nn.Sequential(
                self.cna(in_chs, in_chs, kernel, stride, groups=in_chs, act=False),
                self.cna(in_chs, half, 1),
            )
        )
        self.branch2 = nn.Sequential(
            self.cna(src, half, 1),
            self.cna(half, half, kernel, stride, groups=half, act=False),
            self.cna(half, half, 1),
        )

    @classmethod
    def check(cls, in_chs, out_chs, stride, opts, dims):
        if out_chs % 2:
            return [("out", f"{out_chs} must be even (two halves)")]
        return []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch1 is None:
            keep, x2 = x.chunk(2, dim=1)
            out = torch.cat([keep, self.branch2(x2)], 1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], 1)
        return channel_shuffle(out, 2)
