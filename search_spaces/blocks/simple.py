"""Channel-preserving blocks: pooling (downsampling by max / avg / min / L_p / mixed /
stochastic), stand-alone squeeze-and-excitation, and norm -> act."""

from __future__ import annotations

from typing import Any

import torch

from search_spaces.blocks.base import Block, Opt, conv_out, register
from search_spaces.layers import POOLS, get_act, get_norm, get_pool, to_tuple

__all__ = ["Pool", "SE", "NormAct"]


@register("pool")
class Pool(Block):
    """A pooling layer with the stage / stem stride: ``kind`` max, avg, min, lp (Sermanet et al.
    2012, ``p``), mixed (Yu et al. 2014, ``lam``) or stochastic (Zeiler & Fergus 2013)."""

    OPTIONS = {
        "kind": Opt("max", "str", choices=tuple(POOLS)),
        "kernel": Opt(2, "kernel", 1),
        "padding": Opt(0, "int", 0),
        "ceil_mode": Opt(False, "bool"),
        "p": Opt(2.0, "float", 1.0, 16.0),
        "lam": Opt(0.5, "float", 0.0, 1.0),
    }
    PRESERVES = True

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        kind="max",
        kernel=2,
        padding=0,
        ceil_mode=False,
        p=2.0,
        lam=0.5,
        **common: Any,
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        self.pool = get_pool(
            kind, self.dims, kernel, stride, padding, ceil_mode=ceil_mode, p=p, lam=lam
        )

    @classmethod
    def check(cls, in_chs, out_chs, stride, opts, dims):
        if any(2 * opts["padding"] > k for k in to_tuple(opts["kernel"], dims)):
            return [("padding", f"{opts['padding']} must be at most half the kernel")]
        if opts["kind"] == "stochastic" and opts["ceil_mode"]:
            return [("ceil_mode", "stochastic pooling supports only ceil_mode false")]
        return []

    @classmethod
    def min_size(cls, opts, dims):
        if dims == 3 and opts["kind"] in ("avg", "lp", "mixed"):
            return max(to_tuple(opts["kernel"], dims))
        return 1

    @classmethod
    def out_size(cls, size, stride, opts, dims):
        k = to_tuple(opts["kernel"], dims)
        ceil, p = opts["ceil_mode"], opts["padding"]
        return [conv_out(n, kk, stride, p, ceil=ceil) for n, kk in zip(size, k, strict=True)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


@register("se")
class SE(Block):
    """Stand-alone squeeze-and-excitation (Hu et al. 2018) with its own ``ratio``."""

    OPTIONS = {"ratio": Opt(0.25, "float", 0.0, 1.0)}
    PRESERVES = True
    INTERNAL_SE = True
    NEEDS_STRIDE_1 = True

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, *, ratio=0.25, **common: Any
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        self.se_ratio = ratio
        self.se = self.make_se(in_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(x)


@register("norm_act")
class NormAct(Block):
    """Normalisation then activation (e.g. DenseNet's final norm before the head)."""

    PRESERVES = True
    NEEDS_STRIDE_1 = True

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, **common: Any) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        self.norm = get_norm(self.norm_name, in_chs, self.dims, **self.norm_kwargs)
        self.act = get_act(self.act_name, in_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(x))
