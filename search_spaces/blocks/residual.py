"""Residual blocks: ResNet basic / bottleneck (and ResNeXt), MobileNetV2 inverted residual,
EfficientNet MBConv. ``has_skip`` is decided once; SE sits on the branch before the add and
stochastic depth (DropPath) drops the branch."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from search_spaces.blocks.base import Block, Opt, register
from search_spaces.layers import DropPath, get_act, get_pool

__all__ = ["Basic", "Bottleneck", "InvertedResidual", "Xception"]

SHORTCUT = Opt("auto", "str", choices=("auto", "projection"))


class _ResidualBase(Block):
    """Shared shortcut / add / activation logic of ResNet-style blocks."""

    INTERNAL_SE = True
    RESIDUAL = True

    def _shortcut(self, shortcut: str) -> nn.Module:
        """Identity when the shape is kept, else a 1x1 conv + norm projection (He et al. 2016,
        option B)."""
        if shortcut == "auto" and self.stride == 1 and self.in_chs == self.out_chs:
            return nn.Identity()
        return self.cna(self.in_chs, self.out_chs, 1, self.stride, act=False)

    def _finish(self, shortcut: str) -> None:
        self.se = self.make_se(self.out_chs)
        self.shortcut = self._shortcut(shortcut)
        self.drop_path = DropPath(self.drop_path_rate)
        self.act = get_act(self.act_name, self.out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop_path(self.se(self.branch(x))) + self.shortcut(x))

    def zero_init_last(self) -> None:
        norm = self.branch[-1].norm
        if getattr(norm, "weight", None) is not None:
            nn.init.zeros_(norm.weight)


@register("basic")
class Basic(_ResidualBase):
    """ResNet basic block (He et al. 2016): 3x3 -> 3x3, plus identity or projection shortcut."""

    OPTIONS = {"shortcut": SHORTCUT}

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, *, shortcut="auto", **common: Any
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        self.branch = nn.Sequential(
            self.cna(in_chs, out_chs, 3, stride), self.cna(out_chs, out_chs, 3, act=False)
        )
        self._finish(shortcut)


@register("bottleneck")
class Bottleneck(_ResidualBase):
    """ResNet bottleneck (He et al. 2016) 1x1 -> 3x3 (stride here, torchvision v1.5) -> 1x1;
    the ResNeXt form (Xie et al. 2017) groups the 3x3: width =
    ``int(out / expansion * base_width / 64) * groups``. SE-ResNet (Hu et al. 2018) with ``se``."""

    OPTIONS = {
        "expansion": Opt(4, "int", 1),
        "groups": Opt(1, "int", 1),
        "base_width": Opt(64, "int", 1),
        "shortcut": SHORTCUT,
    }

    @staticmethod
    def width(out_chs: int, expansion: int, groups: int, base_width: int) -> int:
        return int(out_chs // expansion * (base_width / 64.0)) * groups

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        expansion=4,
        groups=1,
        base_width=64,
        shortcut="auto",
        **common: Any,
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        width = self.width(out_chs, expansion, groups, base_width)
        self.branch = nn.Sequential(
            self.cna(in_chs, width, 1),
            self.cna(width, width, 3, stride, groups=groups),
            self.cna(width, out_chs, 1, act=False),
        )
        self._finish(shortcut)

    @classmethod
    def check(cls, in_chs, out_chs, stride, opts, dims):
        width = cls.width(out_chs, opts["expansion"], opts["groups"], opts["base_width"])
        if width < 1:
            return [("expansion", f"leaves a bottleneck width of {width} for out {out_chs}")]
        return []


@register("inverted_residual")
@register("mbconv")
class InvertedResidual(Block):
    """Inverted residual with linear bottleneck, MobileNetV2 (Sandler et al. 2018):
    1x1 expand (skipped at expansion 1) -> depthwise kxk -> SE -> linear 1x1 project, residual
    when stride 1 and in == out. As ``mbconv`` it is EfficientNet's MBConv (Tan & Le 2019):
    SE on by default with squeeze channels relative to the block *input*, stochastic depth.
    With ``se_gate: hard_sigmoid`` and ``act: hard_swish`` it is MobileNetV3's block (Howard
    et al. 2019): SE over the expanded channels (``make_divisible(mid * se)``), hard-sigmoid
    gate; a fractional ``expansion`` gives its expanded widths (e.g. 80 * 2.3 = 184)."""

    OPTIONS = {"expansion": Opt(6, "float", 1.0), "kernel": Opt(3, "kernel", 1)}
    PER_TYPE_DEFAULTS = {"mbconv": {"se": 0.25}}
    INTERNAL_SE = True
    RESIDUAL = True

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, *, expansion=6, kernel=3, **common: Any
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        mid = int(round(in_chs * expansion))
        self.has_skip = stride == 1 and in_chs == out_chs
        self.expand = self.cna(in_chs, mid, 1) if mid != in_chs else nn.Identity()
        self.dw = self.cna(mid, mid, kernel, stride, groups=mid)
        # EfficientNet squeezes relative to the block input, MobileNetV3 to the expanded width
        self.se = self.make_se(mid, base=mid if self.se_gate == "hard_sigmoid" else in_chs)
        self.project = self.cna(mid, out_chs, 1, act=False)
        self.drop_path = DropPath(self.drop_path_rate) if self.has_skip else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return self.drop_path(y) + x if self.has_skip else y

    def zero_init_last(self) -> None:
        if self.has_skip and getattr(self.project.norm, "weight", None) is not None:
            nn.init.zeros_(self.project.norm.weight)


@register("xception")
class Xception(Block):
    """Xception block (Chollet 2017, figure 5): ``convs`` times act -> separable conv (depthwise
    3x3, pointwise 1x1, no norm or act between) -> norm, then a 3x3 max pool with the stride
    when it is > 1; plus a shortcut (identity, or a strided 1x1 conv + norm when the shape
    changes). ``grow_first``: the first separable conv goes to ``out`` (entry and middle flow),
    else the last one does (exit flow); ``first_act: false`` drops the leading activation (the
    first block, which follows a conv -> norm -> act)."""

    OPTIONS = {
        "convs": Opt(3, "int", 1),
        "kernel": Opt(3, "kernel", 1),
        "grow_first": Opt(True, "bool"),
        "first_act": Opt(True, "bool"),
    }
    RESIDUAL = True

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        convs=3,
        kernel=3,
        grow_first=True,
        first_act=True,
        **common: Any,
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        widths = [in_chs] + [
            out_chs if grow_first or i == convs - 1 else in_chs for i in range(convs)
        ]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
            if i or first_act:
                act = get_act(self.act_name, a)
                if i == 0 and hasattr(act, "inplace"):
                    act.inplace = False  # the shortcut still reads the block's input
                layers.append(act)
            layers.append(self.cna(a, a, kernel, groups=a, act=False, norm=False, bias=False))
            layers.append(self.cna(a, b, 1, act=False))
        if stride > 1:
            layers.append(get_pool("max", self.dims, 3, stride, 1))
        self.branch = nn.Sequential(*layers)
        same = stride == 1 and in_chs == out_chs
        self.shortcut = nn.Identity() if same else self.cna(in_chs, out_chs, 1, stride, act=False)
        self.drop_path = DropPath(self.drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path(self.branch(x)) + self.shortcut(x)

    def zero_init_last(self) -> None:
        norms = [m for m in self.branch if hasattr(m, "norm")]
        if norms and getattr(norms[-1].norm, "weight", None) is not None:
            nn.init.zeros_(norms[-1].norm.weight)
