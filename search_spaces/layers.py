"""Layer registries and small building pieces shared by every block.

Norms, activations and pools are plain ``name -> factory`` registries with ``get_*`` helpers
that pass non-strings through (timm ``create_act.py`` / ``create_norm.py``), and one
implementation serves 1-D, 2-D and 3-D input by picking the conv / pool classes by ``dims``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "NORMS",
    "POOLS",
    "PADDING_MODES",
    "conv_cls",
    "conv_transpose_cls",
    "get_act",
    "get_norm",
    "get_pool",
    "CenteredGroupNorm",
    "ConvNormAct",
    "SqueezeExcite",
    "make_divisible",
    "DropPath",
    "MinPool",
    "LpPool",
    "MixedPool",
    "StochasticPool",
    "AdaptivePool",
    "adaptive_bins",
    "same_padding",
    "to_tuple",
]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def to_tuple(value: int | Sequence[int], dims: int) -> tuple[int, ...]:
    """``3`` -> ``(3, 3)`` for dims 2; a sequence is returned as a tuple."""
    if isinstance(value, int):
        return (value,) * dims
    return tuple(int(v) for v in value)


def same_padding(kernel: int | Sequence[int], dilation: int, dims: int) -> tuple[int, ...]:
    """The padding that keeps the size at stride 1 for odd kernels: ``dilation*(k-1)//2``."""
    return tuple(dilation * (k - 1) // 2 for k in to_tuple(kernel, dims))


def conv_cls(dims: int) -> type[nn.Module]:
    """``nn.Conv1d`` / ``nn.Conv2d`` / ``nn.Conv3d``."""
    return (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]


def conv_transpose_cls(dims: int) -> type[nn.Module]:
    """``nn.ConvTranspose1d`` / ``2d`` / ``3d``."""
    return (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[dims - 1]


# ----------------------------------------------------------------------------- activations


def _prelu(channels: int) -> nn.Module:
    return nn.PReLU(num_parameters=max(1, channels))


ACTIVATIONS: dict[str, Callable[[int], nn.Module]] = {
    "relu": lambda c: nn.ReLU(inplace=True),
    "leaky_relu": lambda c: nn.LeakyReLU(0.01, inplace=True),
    "prelu": _prelu,
    "elu": lambda c: nn.ELU(inplace=True),
    "selu": lambda c: nn.SELU(inplace=True),
    "gelu": lambda c: nn.GELU(),
    "silu": lambda c: nn.SiLU(inplace=True),
    "swish": lambda c: nn.SiLU(inplace=True),
    "relu6": lambda c: nn.ReLU6(inplace=True),
    "hard_swish": lambda c: nn.Hardswish(inplace=True),
    "mish": lambda c: nn.Mish(inplace=True),
    "tanh": lambda c: nn.Tanh(),
    "sigmoid": lambda c: nn.Sigmoid(),
    "hard_sigmoid": lambda c: nn.Hardsigmoid(inplace=True),  # relu6(x + 3) / 6 (MobileNetV3)
    "softplus": lambda c: nn.Softplus(),
    "softsign": lambda c: nn.Softsign(),
    "none": lambda c: nn.Identity(),
}


def get_act(act: str | nn.Module | None, channels: int = 1) -> nn.Module:
    """An activation module by name (``None`` / ``"none"`` -> Identity); modules pass through."""
    if act is None:
        return nn.Identity()
    if not isinstance(act, str):
        return act
    return ACTIVATIONS[act](channels)


# ----------------------------------------------------------------------------- norms


class _Centered:
    """Subtract each group's mean before PyTorch's group / instance norm.

    The result is the same function (these norms are shift invariant per group), but PyTorch's
    CPU kernels lose most float32 digits on a near-constant group with a large mean (a dead
    channel after an activation, a 2x2 map): the variance comes out as noise that the next
    norm amplifies, so logits moved by 0.27 against float64 on sampled networks, while
    onnxruntime computed them exactly. Centred first, the kernels are accurate and an export
    agrees with PyTorch.
    """

    groups_attr = "num_groups"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.reshape(x.shape[0], getattr(self, self.groups_attr), -1)
        return super().forward((g - g.mean(-1, keepdim=True)).reshape(x.shape))


class CenteredGroupNorm(_Centered, nn.GroupNorm):
    """``nn.GroupNorm`` on group-centred input (see :class:`_Centered`)."""


class _CenteredInstance(_Centered):
    groups_attr = "num_features"


class CenteredInstanceNorm1d(_CenteredInstance, nn.InstanceNorm1d):
    """``nn.InstanceNorm1d`` on channel-centred input (see :class:`_Centered`)."""


class CenteredInstanceNorm2d(_CenteredInstance, nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` on channel-centred input (see :class:`_Centered`)."""


class CenteredInstanceNorm3d(_CenteredInstance, nn.InstanceNorm3d):
    """``nn.InstanceNorm3d`` on channel-centred input (see :class:`_Centered`)."""


def _instance(dims: int, channels: int, eps: float, momentum: float, groups: int) -> nn.Module:
    cls = (CenteredInstanceNorm1d, CenteredInstanceNorm2d, CenteredInstanceNorm3d)[dims - 1]
    return cls(channels, eps=eps, momentum=momentum, affine=True)


def _batch(dims: int, channels: int, eps: float, momentum: float, groups: int) -> nn.Module:
    cls = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[dims - 1]
    return cls(channels, eps=eps, momentum=momentum)


NORMS: dict[str, Callable[[int, int, float, float, int], nn.Module]] = {
    "batch": _batch,
    # "layer" for conv features: GroupNorm(1, C) -- normalises over C and space per sample.
    "layer": lambda d, c, eps, m, g: CenteredGroupNorm(1, c, eps=eps),
    "instance": _instance,
    "group": lambda d, c, eps, m, g: CenteredGroupNorm(math.gcd(g, c), c, eps=eps),
    # Krizhevsky et al. 2012, section 3.3: k = 2, n = 5, alpha = 1e-4, beta = 0.75 over
    # neighbouring channels. PyTorch divides alpha by n; the paper does not, so alpha * n here.
    "lrn": lambda d, c, eps, m, g: nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0),
    "none": lambda d, c, eps, m, g: nn.Identity(),
}


def get_norm(
    norm: str | nn.Module | None,
    channels: int,
    dims: int,
    eps: float = 1e-5,
    momentum: float = 0.1,
    groups: int = 32,
) -> nn.Module:
    """A normalisation module by name for ``dims``-D features; modules pass through."""
    if norm is None:
        return nn.Identity()
    if not isinstance(norm, str):
        return norm
    return NORMS[norm](dims, channels, eps, momentum, groups)


# ----------------------------------------------------------------------------- pools


class MinPool(nn.Module):
    """Min pooling: ``-maxpool(-x)``."""

    def __init__(self, dims: int, kernel, stride, padding=0, ceil_mode: bool = False) -> None:
        super().__init__()
        self.pool = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[dims - 1](
            kernel, stride, padding, ceil_mode=ceil_mode
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.pool(-x)


class LpPool(nn.Module):
    """L_p pooling ``(sum |x|^p)^(1/p)`` over each window (Sermanet et al. 2012)."""

    def __init__(self, dims: int, kernel, stride, padding=0, ceil_mode=False, p=2.0) -> None:
        super().__init__()
        self.p = float(p)
        self.window = math.prod(to_tuple(kernel, dims))
        self.pool = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[dims - 1](
            kernel, stride, padding, ceil_mode=ceil_mode, count_include_pad=True
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.pool(x.abs().pow(self.p)) * self.window).clamp_min(1e-12).pow(1.0 / self.p)


class MixedPool(nn.Module):
    """Mixed pooling ``lam * max + (1 - lam) * avg`` (Yu et al. 2014; fixed lambda)."""

    def __init__(self, dims: int, kernel, stride, padding=0, ceil_mode=False, lam=0.5) -> None:
        super().__init__()
        self.lam = float(lam)
        self.max = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[dims - 1](
            kernel, stride, padding, ceil_mode=ceil_mode
        )
        self.avg = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[dims - 1](
            kernel, stride, padding, ceil_mode=ceil_mode
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lam * self.max(x) + (1.0 - self.lam) * self.avg(x)


class StochasticPool(nn.Module):
    """Stochastic pooling (Zeiler & Fergus 2013).

    In training each window outputs one of its activations, sampled with probability
    proportional to the (ReLU-clamped) activation; in eval it outputs the probability-weighted
    average ``sum(p_i * a_i)``. Windows of all-zero activations output 0.
    """

    def __init__(self, dims: int, kernel, stride, padding=0, ceil_mode=False) -> None:
        super().__init__()
        self.dims = dims
        self.kernel = to_tuple(kernel, dims)
        self.stride = to_tuple(stride, dims)
        self.padding = to_tuple(padding, dims)
        self.window = math.prod(self.kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x.clamp_min(0)
        if any(self.padding):
            pad = [p for p in reversed(self.padding) for _ in (0, 1)]
            a = F.pad(a, pad)
        if not self.training:
            # sum(p_i * a_i) = sum(a_i^2) / sum(a_i): two window sums, no unfold, so the
            # inference rule exports to ONNX (whose Unfold needs every size known).
            pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[self.dims - 1]
            squares = pool(a * a, self.kernel, self.stride)
            return squares / pool(a, self.kernel, self.stride).clamp_min(1e-12 / self.window)
        for i, (k, s) in enumerate(zip(self.kernel, self.stride, strict=True)):
            a = a.unfold(2 + i, k, s)
        windows = a.flatten(-self.dims)  # (N, C, *out, K)
        total = windows.sum(-1, keepdim=True)
        probs = windows / total.clamp_min(1e-12)
        flat = probs.reshape(-1, probs.shape[-1])
        empty = flat.sum(-1, keepdim=True) <= 0
        flat = torch.where(empty, torch.ones_like(flat), flat)
        idx = torch.multinomial(flat, 1)
        picked = windows.reshape(-1, windows.shape[-1]).gather(1, idx)
        return picked.reshape(windows.shape[:-1])


def adaptive_bins(size: int, out: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` windows of adaptive pooling from ``size`` to ``out`` positions:
    ``floor(i * size / out)`` to ``ceil((i + 1) * size / out)``, PyTorch's rule."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _exporting() -> bool:
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


class AdaptivePool(nn.Module):
    """Adaptive average / max pooling to ``output_size`` in 1-D, 2-D or 3-D.

    Eager mode runs PyTorch's adaptive pool. While the model is traced or exported (the input
    size is then fixed), the same bins are computed with operators every ONNX runtime has: a
    plain pool whose window is the bin when the output size divides the input size, else
    per-bin slices and reductions (spatial pyramid pooling over a 3x3 map, say). ONNX's
    exporters translate adaptive pooling only in the global or evenly dividing case, and only
    when every input size is known.
    """

    def __init__(self, kind: str, dims: int, output_size: int | Sequence[int]) -> None:
        super().__init__()
        if kind not in ("avg", "max"):
            raise ValueError(f"adaptive pool kind {kind!r}: expected avg or max")
        self.kind, self.dims = kind, dims
        self.output_size = to_tuple(output_size, dims)
        self.native = {
            "avg": (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d),
            "max": (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d),
        }[kind][dims - 1](self.output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _exporting():
            return self.native(x)
        sizes = [int(n) for n in x.shape[2:]]
        if all(n % o == 0 for n, o in zip(sizes, self.output_size, strict=True)):
            # evenly dividing: a plain pool whose window is the bin
            kernel = [n // o for n, o in zip(sizes, self.output_size, strict=True)]
            if self.kind == "max":
                return (F.max_pool1d, F.max_pool2d, F.max_pool3d)[self.dims - 1](x, kernel)
            return (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[self.dims - 1](x, kernel)
        return self._binned(x, sizes)

    def _binned(self, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        """One reduction per output position, stacked back into N, C, *output_size."""
        bins = [adaptive_bins(n, o) for n, o in zip(sizes, self.output_size, strict=True)]
        axes = tuple(range(2, 2 + self.dims))
        cells = []
        for window in itertools.product(*bins):
            index = (slice(None), slice(None), *(slice(a, b) for a, b in window))
            part = x[index]
            cells.append(part.amax(dim=axes) if self.kind == "max" else part.mean(dim=axes))
        return torch.stack(cells, dim=-1).reshape(*x.shape[:2], *self.output_size)


def _torch_pool(kind: str) -> Callable[..., nn.Module]:
    def make(dims: int, kernel, stride, padding=0, ceil_mode=False, **_: object) -> nn.Module:
        if kind == "max":
            cls = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[dims - 1]
            return cls(kernel, stride, padding, ceil_mode=ceil_mode)
        cls = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[dims - 1]
        return cls(kernel, stride, padding, ceil_mode=ceil_mode)

    return make


POOLS: dict[str, Callable[..., nn.Module]] = {
    "max": _torch_pool("max"),
    "avg": _torch_pool("avg"),
    "min": lambda d, k, s, pad=0, ceil_mode=False, **_: MinPool(d, k, s, pad, ceil_mode),
    "lp": lambda d, k, s, pad=0, ceil_mode=False, p=2.0, **_: LpPool(d, k, s, pad, ceil_mode, p),
    "mixed": lambda d, k, s, pad=0, ceil_mode=False, lam=0.5, **_: MixedPool(
        d, k, s, pad, ceil_mode, lam
    ),
    "stochastic": lambda d, k, s, pad=0, ceil_mode=False, **_: StochasticPool(d, k, s, pad),
}


def get_pool(kind: str | nn.Module, dims: int, kernel, stride, padding=0, **options) -> nn.Module:
    """A pooling module by kind; ``options`` may carry ``ceil_mode``, ``p`` (lp), ``lam``."""
    if not isinstance(kind, str):
        return kind
    return POOLS[kind](dims, kernel, stride, padding, **options)


# ----------------------------------------------------------------------------- composites


class ConvNormAct(nn.Sequential):
    """conv -> norm -> act (or conv -> act -> norm with ``norm_position="after_act"``).

    ``bias=None`` means a bias only when there is no norm (a norm's shift makes it redundant).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        *,
        dims: int = 2,
        padding: int | Sequence[int] | None = None,
        dilation: int = 1,
        groups: int = 1,
        bias: bool | None = None,
        padding_mode: str = "zeros",
        act: str | nn.Module | None = "relu",
        norm: str | nn.Module | None = "batch",
        norm_position: str = "before_act",
        norm_kwargs: dict | None = None,
    ) -> None:
        if padding is None:
            padding = same_padding(kernel, dilation, dims)
        has_norm = norm not in (None, "none")
        conv = conv_cls(dims)(
            in_chs,
            out_chs,
            kernel,
            stride,
            padding,
            dilation,
            groups,
            bias=(not has_norm) if bias is None else bias,
            padding_mode=padding_mode,
        )
        norm_mod = get_norm(norm, out_chs, dims, **(norm_kwargs or {}))
        act_mod = get_act(act, out_chs)
        if norm_position == "after_act":
            super().__init__(conv, act_mod, norm_mod)
            self.norm_index = 2
        else:
            super().__init__(conv, norm_mod, act_mod)
            self.norm_index = 1

    @property
    def norm(self) -> nn.Module:
        """The norm module (Identity when there is none)."""
        return self[self.norm_index]


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): global pool -> 1x1 reduce -> act -> 1x1
    expand -> gate. ``squeeze`` channels are ``max(1, int(base * ratio))``, where ``base``
    defaults to ``channels`` (EfficientNet passes the block input instead).

    ``gate="hard_sigmoid"`` is MobileNetV3's SE (Howard et al. 2019): ReLU inside, a
    hard-sigmoid gate, and squeeze channels rounded to a multiple of 8 (``make_divisible``).
    """

    def __init__(
        self,
        channels: int,
        ratio: float,
        *,
        dims: int,
        act: str = "relu",
        base: int | None = None,
        gate: str = "sigmoid",
    ) -> None:
        super().__init__()
        base = base if base is not None else channels
        if gate == "hard_sigmoid":
            squeeze, act = make_divisible(base * ratio), "relu"
        else:
            squeeze = max(1, int(base * ratio))
        conv = conv_cls(dims)
        self.reduce = conv(channels, squeeze, 1, bias=True)
        self.act = get_act(act, squeeze)
        self.expand = conv(squeeze, channels, 1, bias=True)
        self.gate = get_act(gate, channels)
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=tuple(range(2, 2 + self.dims)), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``), one
    ``divisor`` up if that lost more than 10% (MobileNet's ``_make_divisible``)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop a residual branch per sample in training."""

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        self.rate = float(rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep
