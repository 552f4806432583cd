"""The block contract: option schema, shared keyword signature and the ``type -> class`` registry.

Every block takes ``in_chs, out_chs, stride`` plus the common options (``act, norm,
norm_position, padding_mode, se, se_gate``) and its own options, declared in ``OPTIONS`` so that the
spec validator (:mod:`search_spaces.spec`) can check and fill them without building anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from search_spaces.layers import (
    ACTIVATIONS,
    NORMS,
    PADDING_MODES,
    ConvNormAct,
    SqueezeExcite,
    to_tuple,
)

__all__ = ["Opt", "Block", "BLOCKS", "COMMON_OPTIONS", "register", "get_block", "conv_out"]


@dataclass(frozen=True)
class Opt:
    """One block option: default, kind (int, float, bool, str, kernel, int_or_null,
    bool_or_null), and bounds / choices for validation."""

    default: Any
    kind: str = "int"
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    high_open: bool = False


COMMON_OPTIONS: dict[str, Opt] = {
    "act": Opt("relu", "str", choices=tuple(ACTIVATIONS)),
    "norm": Opt("batch", "str", choices=tuple(NORMS)),
    "norm_position": Opt("before_act", "str", choices=("before_act", "after_act")),
    "padding_mode": Opt("zeros", "str", choices=PADDING_MODES),
    "se": Opt(0.0, "float", 0.0, 1.0),
    "se_gate": Opt("sigmoid", "str", choices=("sigmoid", "hard_sigmoid")),
}

BLOCKS: dict[str, type[Block]] = {}


def register(name: str):
    """Class decorator: ``BLOCKS[name] = cls`` (a class may be registered under several names,
    each with its own option defaults via ``DEFAULT_OVERRIDES``)."""

    def deco(cls: type[Block]) -> type[Block]:
        BLOCKS[name] = cls
        return cls

    return deco


def get_block(block: str | type[nn.Module]) -> type[nn.Module]:
    """The block class for a type name; classes pass through."""
    if not isinstance(block, str):
        return block
    try:
        return BLOCKS[block]
    except KeyError:
        raise ValueError(
            f"unknown block type {block!r}; known: {', '.join(sorted(BLOCKS))}"
        ) from None


def conv_out(n: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil=False) -> int:
    """Output length of a conv / pool: ``floor((n + 2p - d(k-1) - 1) / s) + 1``
    (the (W - F + 2P) / S + 1 rule; ``ceil`` for ceil-mode pools)."""
    span = n + 2 * padding - dilation * (kernel - 1) - 1
    out = (math.ceil(span / stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= n + padding:
        out -= 1  # PyTorch: the last window must start inside the input or left padding
    return out


class Block(nn.Module):
    """Base of all blocks: stores the common options and offers ``cna`` (a conv-norm-act with
    the block's settings) and ``make_se``.

    Class attributes describe the block to the validator and builder:
    ``OPTIONS`` (own options), ``CHANNEL_KEYS`` (options scaled by width), ``DERIVED_OUT``
    (output channels follow from the input and options), ``NEEDS_STRIDE_1``, ``MIN_DIMS``,
    ``INTERNAL_SE`` (applies ``se`` itself; otherwise the builder appends an SE),
    ``RESIDUAL`` (takes ``drop_path``), ``PRESERVES`` (out = in), ``PER_TYPE_DEFAULTS``
    (option defaults differing by registered name).
    """

    OPTIONS: dict[str, Opt] = {}
    CHANNEL_KEYS: tuple[str, ...] = ()
    DERIVED_OUT = False
    PRESERVES = False
    NEEDS_STRIDE_1 = False
    MIN_DIMS = 1
    INTERNAL_SE = False
    RESIDUAL = False
    PER_TYPE_DEFAULTS: dict[str, dict[str, Any]] = {}

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        dims: int = 2,
        act: str = "relu",
        norm: str = "batch",
        norm_position: str = "before_act",
        padding_mode: str = "zeros",
        se: float = 0.0,
        se_gate: str = "sigmoid",
        norm_kwargs: dict | None = None,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_chs, self.out_chs, self.stride, self.dims = in_chs, out_chs, stride, dims
        self.act_name, self.norm_name = act, norm
        self.norm_position, self.padding_mode = norm_position, padding_mode
        self.se_ratio, self.se_gate = se, se_gate
        self.norm_kwargs = dict(norm_kwargs or {})
        self.drop_path_rate = drop_path

    # ----------------------------------------------------------------- schema hooks
    @classmethod
    def options(cls, type_name: str) -> dict[str, Opt]:
        """Common + own options, with the defaults of ``type_name``."""
        merged = dict(COMMON_OPTIONS)
        merged.update(cls.OPTIONS)
        for key, value in cls.PER_TYPE_DEFAULTS.get(type_name, {}).items():
            o = merged[key]
            merged[key] = Opt(value, o.kind, o.low, o.high, o.choices, o.high_open)
        return merged

    @classmethod
    def out_channels(cls, in_chs: int, opts: dict[str, Any], dims: int) -> int | None:
        """Derived output channels, or None when the stage's ``out`` decides."""
        return in_chs if cls.PRESERVES else None

    @classmethod
    def check(cls, in_chs: int, out_chs: int, stride: int, opts: dict, dims: int) -> list:
        """Problems that need the channel counts: a list of (option, message)."""
        return []

    @classmethod
    def min_size(cls, opts: dict, dims: int) -> int:
        """Smallest input length per axis the block accepts (PyTorch's 3-D average pooling
        refuses inputs shorter than its kernel, whatever the padding)."""
        return 1

    @classmethod
    def conv_padding(cls, opts: dict, dims: int) -> int:
        """The widest padding the block's convolutions apply (``padding_mode`` reflect and
        circular need a side longer than it): from its kernel / dilation options, else a 3x3's."""
        kernels = [
            k
            for key, v in opts.items()
            if key.endswith("kernel") and v is not None
            for k in to_tuple(v, dims)
        ]
        return opts.get("dilation", 1) * (max(kernels or [3]) - 1) // 2

    @classmethod
    def out_size(cls, size: Sequence[int], stride: int, opts: dict, dims: int) -> list[int]:
        """Spatial output size; the default is 'same' padding: ceil(n / stride)."""
        return [math.ceil(n / stride) for n in size]

    # ----------------------------------------------------------------- helpers
    def cna(
        self,
        in_chs: int,
        out_chs: int,
        kernel: int | Sequence[int] = 1,
        stride: int | Sequence[int] = 1,
        *,
        act: Any = True,
        norm: Any = True,
        **kw: Any,
    ) -> ConvNormAct:
        """A ConvNormAct with this block's settings (``act=False`` / ``norm=False`` drop them)."""
        return ConvNormAct(
            in_chs,
            out_chs,
            kernel,
            stride,
            dims=self.dims,
            padding_mode=self.padding_mode,
            act=self.act_name if act is True else (None if act is False else act),
            norm=self.norm_name if norm is True else (None if norm is False else norm),
            norm_position=self.norm_position,
            norm_kwargs=self.norm_kwargs,
            **kw,
        )

    def make_se(self, channels: int, base: int | None = None) -> nn.Module:
        """A SqueezeExcite on ``channels`` when ``se`` > 0, else Identity."""
        if self.se_ratio <= 0:
            return nn.Identity()
        return SqueezeExcite(
            channels, self.se_ratio, dims=self.dims, act=self.act_name, base=base, gate=self.se_gate
        )

    def kernel_tuple(self, kernel: int | Sequence[int]) -> tuple[int, ...]:
        return to_tuple(kernel, self.dims)

    def zero_init_last(self) -> None:
        """Zero the last norm's weight of the residual branch (no-op for plain blocks)."""
