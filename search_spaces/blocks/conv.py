"""Plain convolution blocks: conv (any kernel / dilation / groups / padding mode; 1x1),
transposed conv, spatially separable (asymmetric), flattened, depthwise-separable, NiN mlpconv.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from search_spaces.blocks.base import Block, Opt, conv_out, register
from search_spaces.layers import conv_transpose_cls, get_act, get_norm, to_tuple

__all__ = ["Conv", "ConvTranspose", "Asym", "Flattened", "DwSep", "MlpConv"]

KERNEL = Opt(3, "kernel", 1)


def _pad(opts: dict, dims: int) -> tuple[int, ...]:
    kernel = to_tuple(opts["kernel"], dims)
    if opts.get("padding") is None:
        return tuple(opts.get("dilation", 1) * (k - 1) // 2 for k in kernel)
    return to_tuple(opts["padding"], dims)


def _groups_check(in_chs: int, out_chs: int, groups: int) -> list:
    if in_chs % groups or out_chs % groups:
        return [("groups", f"{groups} must divide in channels {in_chs} and out channels {out_chs}")]
    return []


@register("conv")
class Conv(Block):
    """Convolution -> norm -> act with any kernel, stride, dilation, groups and padding mode;
    ``kernel: 1`` is the 1x1 (network-in-network) convolution (Lin et al. 2013)."""

    OPTIONS = {
        "kernel": KERNEL,
        "dilation": Opt(1, "int", 1),
        "groups": Opt(1, "int", 1),
        "padding": Opt(None, "kernel_or_null", 0),
        "bias": Opt(None, "bool_or_null"),
    }

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        kernel=3,
        dilation=1,
        groups=1,
        padding=None,
        bias=None,
        **common: Any,
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        self.conv = self.cna(
            in_chs,
            out_chs,
            kernel,
            stride,
            dilation=dilation,
            groups=groups,
            padding=padding,
            bias=bias,
        )

    @classmethod
    def check(cls, in_chs, out_chs, stride, opts, dims):
        return _groups_check(in_chs, out_chs, opts["groups"])

    @classmethod
    def out_size(cls, size, stride, opts, dims):
        kernel, pad = to_tuple(opts["kernel"], dims), _pad(opts, dims)
        return [
            conv_out(n, k, stride, p, opts["dilation"])
            for n, k, p in zip(size, kernel, pad, strict=True)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@register("conv_transpose")
class ConvTranspose(Block):
    """Transposed convolution -> norm -> act (upsampling; Zeiler et al. 2010, "deconvolution").
    Output length ``(N-1)S - 2P + D(K-1) + output_padding + 1``."""

    OPTIONS = {
        "kernel": Opt(2, "kernel", 1),
        "padding": Opt(0, "int", 0),
        "output_padding": Opt(0, "int", 0),
        "dilation": Opt(1, "int", 1),
        "groups": Opt(1, "int", 1),
        "bias": Opt(None, "bool_or_null"),
    }

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        kernel=2,
        padding=0,
        output_padding=0,
        dilation=1,
        groups=1,
        bias=None,
        **common: Any,
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        has_norm = self.norm_name != "none"
        self.conv = conv_transpose_cls(self.dims)(
            in_chs,
            out_chs,
            kernel,
            stride,
            padding,
            output_padding,
            groups,
            bias=(not has_norm) if bias is None else bias,
            dilation=dilation,
        )
        self.norm = get_norm(self.norm_name, out_chs, self.dims, **self.norm_kwargs)
        self.act = get_act(self.act_name, out_chs)

    @classmethod
    def check(cls, in_chs, out_chs, stride, opts, dims):
        out = _groups_check(in_chs, out_chs, opts["groups"])
        if opts["padding_mode"] != "zeros":
            out.append(
                (
                    "padding_mode",
                    f"transposed conv supports only zeros, got {opts['padding_mode']!r}",
                )
            )
        if opts["output_padding"] >= max(stride, opts["dilation"]):
            out.append(("output_padding", "must be smaller than stride or dilation"))
        return out

    @classmethod
    def out_size(cls, size, stride, opts, dims):
        k = to_tuple(opts["kernel"], dims)
        p, op, d = opts["padding"], opts["output_padding"], opts["dilation"]
        return [
            (n - 1) * stride - 2 * p + d * (kk - 1) + op + 1 for n, kk in zip(size, k, strict=True)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm_position == "after_act":
            return self.norm(self.act(x))
        return self.act(self.norm(x))


def _axis_kernel(k: int, axis: int, dims: int) -> tuple[int, ...]:
    """Kernel ``k`` along ``axis`` and 1 elsewhere: (k, 1), (1, k), ..."""
    return tuple(k if i == axis else 1 for i in range(dims))


def _axis_stride(stride: int, axis: int, dims: int) -> tuple[int, ...]:
    return tuple(stride if i == axis else 1 for i in range(dims))


@register("asym")
class Asym(Block):
    """Spatially separable (asymmetric) convolution: k x 1 then 1 x k (one 1-D conv per axis),
    Inception v3 (Szegedy et al. 2016). ``separate``: every factor has its own norm/act;
    otherwise the factors are plain convs and one norm/act follows the last."""

    OPTIONS = {"kernel": Opt(3, "int", 1), "separate": Opt(True, "bool")}
    MIN_DIMS = 2

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, *, kernel=3, separate=True, **common: Any
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        layers, chs = [], in_chs
        for axis in range(self.dims):
            last = axis == self.dims - 1
            with_na = separate or last
            layers.append(
                self.cna(
                    chs,
                    out_chs,
                    _axis_kernel(kernel, axis, self.dims),
                    _axis_stride(stride, axis, self.dims),
                    act=with_na,
                    norm=with_na,
                )
            )
            chs = out_chs
        self.convs = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


@register("flattened")
class Flattened(Block):
    """Flattened convolution (Jin, Dundar & Culurciello 2014): a 1x1 conv across channels, then
    a depthwise 1-D conv along each spatial axis in turn; norm/act after the last."""

    OPTIONS = {"kernel": Opt(3, "int", 1)}
    MIN_DIMS = 2

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, *, kernel=3, **common: Any
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        layers = [self.cna(in_chs, out_chs, 1, act=False, norm=False)]
        for axis in range(self.dims):
            last = axis == self.dims - 1
            layers.append(
                self.cna(
                    out_chs,
                    out_chs,
                    _axis_kernel(kernel, axis, self.dims),
                    _axis_stride(stride, axis, self.dims),
                    groups=out_chs,
                    act=last,
                    norm=last,
                )
            )
        self.convs = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


@register("dwsep")
class DwSep(Block):
    """Depthwise-separable convolution: depthwise kxk then pointwise 1x1.
    MobileNet v1 (Howard et al. 2017) puts norm+act between the two; Xception (Chollet 2017)
    puts neither (``mid_norm: false, mid_act: false``), and then no bias on the depthwise conv
    either: it would feed the pointwise conv linearly, which already has a norm."""

    OPTIONS = {
        "kernel": KERNEL,
        "dilation": Opt(1, "int", 1),
        "mid_norm": Opt(True, "bool"),
        "mid_act": Opt(True, "bool"),
    }

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        kernel=3,
        dilation=1,
        mid_norm=True,
        mid_act=True,
        **common: Any,
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        self.dw = self.cna(
            in_chs,
            in_chs,
            kernel,
            stride,
            dilation=dilation,
            groups=in_chs,
            act=mid_act,
            norm=mid_norm,
            bias=False if not (mid_norm or mid_act) else None,  # linear into the pointwise
        )
        self.pw = self.cna(in_chs, out_chs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


@register("mlpconv")
class MlpConv(Block):
    """NiN mlpconv (Lin, Chen & Yan 2013): a kxk conv followed by ``layers`` 1x1 convs (a small
    MLP over channels at every position), each with norm/act."""

    OPTIONS = {"kernel": KERNEL, "layers": Opt(2, "int", 0)}

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, *, kernel=3, layers=2, **common: Any
    ) -> None:
        super().__init__(in_chs, out_chs, stride, **common)
        mods = [self.cna(in_chs, out_chs, kernel, stride)]
        mods += [self.cna(out_chs, out_chs, 1) for _ in range(layers)]
        self.convs = nn.Sequential(*mods)

    @classmethod
    def out_size(cls, size: Sequence[int], stride, opts, dims):
        k = to_tuple(opts["kernel"], dims)
        return [conv_out(n, kk, stride, (kk - 1) // 2) for n, kk in zip(size, k, strict=True)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)
