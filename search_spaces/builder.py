"""Build an ``nn.Module`` from an architecture spec (decode with :func:`spec.plan`, then build).

The builder owns the running channel count and "stride only on a stage's first block"
(torchvision ``_make_layer``); blocks get the shared keyword signature. One spec always builds
the same architecture; weights are initialised by ``spec["init"]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from search_spaces.blocks import BLOCKS
from search_spaces.layers import (
    AdaptivePool,
    ConvNormAct,
    SqueezeExcite,
    conv_cls,
    get_act,
    get_pool,
)
from search_spaces.spec import Entry, load_spec, plan

__all__ = ["build", "Network", "Head", "AuxHead", "SpatialPyramidPool"]


class SpatialPyramidPool(nn.Module):
    """Spatial pyramid pooling (He et al. 2014): adaptive max pools to ``levels`` grids,
    flattened and concatenated, so any input size gives a fixed-length vector."""

    def __init__(self, dims: int, levels: list[int]) -> None:
        super().__init__()
        self.pools = nn.ModuleList(AdaptivePool("max", dims, level) for level in levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([p(x).flatten(1) for p in self.pools], 1)


class Head(nn.Module):
    """Classifier head: an optional 1x1 conv -> norm -> act (``conv``: MobileNet, EfficientNet,
    ShuffleNet), then global avg / max pool, flatten (optionally adaptive-avg-pooled to
    ``flatten_size``) or spatial pyramid pooling; then hidden ``Linear -> act -> Dropout``
    layers, dropout and the final linear. With ``classifier: conv`` (SqueezeNet): dropout ->
    1x1 conv to the classes -> act -> global pool."""

    def __init__(
        self,
        head: Mapping[str, Any],
        in_chs: int,
        size: list[int],
        dims: int,
        num_classes: int,
        conv: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv = conv if conv is not None else nn.Identity()
        if conv is not None:
            in_chs = conv[0].out_channels
        pool, self.conv_classifier = head["pool"], head["classifier"] == "conv"
        if self.conv_classifier:
            self.pre = nn.Sequential(
                nn.Dropout(head["dropout"]),
                conv_cls(dims)(in_chs, num_classes, 1),
                get_act(head["act"], num_classes),
            )
            self.pool = nn.Sequential(
                AdaptivePool("max" if pool == "max" else "avg", dims, 1), nn.Flatten(1)
            )
            self.fc = nn.Identity()
            return
        self.pre = nn.Identity()
        if pool in ("avg", "max"):
            self.pool = nn.Sequential(AdaptivePool(pool, dims, 1), nn.Flatten(1))
            features = in_chs
        elif pool == "spp":
            self.pool = SpatialPyramidPool(dims, head["spp_levels"])
            features = in_chs * sum(level**dims for level in head["spp_levels"])
        else:
            fs = head["flatten_size"]
            first = nn.Identity() if fs is None else AdaptivePool("avg", dims, fs)
            self.pool = nn.Sequential(first, nn.Flatten(1))
            features = in_chs * math.prod(size)
        layers: list[nn.Module] = []
        for width in head["hidden"]:
            layers += [
                nn.Linear(features, width),
                get_act(head["act"], width),
                nn.Dropout(head["dropout"]),
            ]
            features = width
        if not head["hidden"]:
            layers.append(nn.Dropout(head["dropout"]))
        layers.append(nn.Linear(features, num_classes))
        self.fc = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.pre(self.conv(x))))


class AuxHead(nn.Module):
    """An auxiliary classifier (Szegedy et al. 2015; 2016): a pool (a window, or adaptive to
    ``pool_size``), valid-padded conv -> norm -> act layers, an optional global average pool,
    flatten, hidden ``Linear -> act -> Dropout`` layers and a linear to the classes."""

    def __init__(
        self,
        aux: Mapping[str, Any],
        in_chs: int,
        out_size: list[int],
        cna: Any,
        num_classes: int,
    ) -> None:
        """``out_size``: the size after the pool and convs (the plan's, :func:`spec.plan`)."""
        super().__init__()
        dims = len(out_size)
        if aux["pool_size"] is not None:
            self.pool = AdaptivePool(aux["pool"], dims, aux["pool_size"])
        else:
            self.pool = get_pool(aux["pool"], dims, aux["pool_kernel"], aux["pool_stride"], 0)
        convs, chs = [], in_chs
        for out, k in zip(aux["channels"], aux["kernels"], strict=True):
            convs.append(cna(chs, out, k, padding=0))
            chs = out
        self.convs = nn.Sequential(*convs)
        self.global_pool = AdaptivePool("avg", dims, 1) if aux["global_pool"] else nn.Identity()
        features = chs * (1 if aux["global_pool"] else math.prod(out_size))
        layers: list[nn.Module] = [nn.Flatten(1)]
        for width in aux["hidden"]:
            layers += [nn.Linear(features, width), nn.ReLU(inplace=True)]
            layers.append(nn.Dropout(aux["dropout"]))
            features = width
        layers.append(nn.Linear(features, num_classes))
        self.fc = nn.Sequential(*layers)
        self.weight = float(aux["weight"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.global_pool(self.convs(self.pool(x))))


class Network(nn.Module):
    """stem -> stages -> head, built from a canonical spec (kept as ``self.spec``).

    Auxiliary classifiers (``aux_heads``, keyed by stage index) run only in
    :meth:`forward_with_aux`, which the training engine calls; ``forward`` (evaluation,
    export) never runs them, so an exported graph has none of their weights.
    """

    def __init__(
        self,
        stem: nn.Sequential,
        stages: nn.Sequential,
        head: Head,
        spec: dict,
        aux_heads: dict[int, AuxHead] | None = None,
    ) -> None:
        super().__init__()
        self.stem, self.stages, self.head = stem, stages, head
        self.aux_heads = nn.ModuleDict({str(i): h for i, h in (aux_heads or {}).items()})
        self.spec = spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))

    def forward_with_aux(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, list[tuple[float, torch.Tensor]]]:
        """(logits, [(loss weight, auxiliary logits), ...]) for training."""
        if not len(self.aux_heads):
            return self(x), []
        x, aux = self.stem(x), []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if str(i) in self.aux_heads:
                head = self.aux_heads[str(i)]
                aux.append((head.weight, head(x)))
        return self.head(x), aux


def _make(entry: Entry, spec: Mapping[str, Any], dims: int) -> nn.Module:
    cls = BLOCKS[entry.type]
    d = spec["defaults"]
    kwargs = dict(entry.opts)
    kwargs.update(
        dims=dims,
        norm_kwargs={
            "eps": d["norm_eps"],
            "momentum": d["norm_momentum"],
            "groups": d["norm_groups"],
        },
    )
    if cls.RESIDUAL:
        kwargs["drop_path"] = entry.drop_path
    block = cls(entry.in_chs, entry.out_chs, entry.stride, **kwargs)
    if not cls.INTERNAL_SE and entry.opts.get("se", 0.0) > 0:
        se = SqueezeExcite(
            entry.out_chs,
            entry.opts["se"],
            dims=dims,
            act=entry.opts["act"],
            gate=entry.opts["se_gate"],
        )
        return nn.Sequential(block, se)
    return block


def _init(model: nn.Module, scheme: str, zero_init_residual: bool) -> None:
    """kaiming (torchvision ResNet) or xavier initialisation; ``default`` keeps PyTorch's."""
    if scheme != "default":
        for m in model.modules():
            if isinstance(m, nn.modules.conv._ConvNd):
                if scheme == "kaiming":
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                if scheme == "kaiming":
                    nn.init.normal_(m.weight, 0, 0.01)
                else:
                    nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm)) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if hasattr(m, "zero_init_last") and m is not model:
                m.zero_init_last()


def build(spec: Mapping[str, Any] | str, num_classes: int) -> nn.Module:
    """The network of ``spec`` (a dict or a spec file path) with ``num_classes`` outputs.
    Input dims / channels come from ``spec["input"]``; the resolution multiplier is for the
    caller to apply to its inputs."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes: must be an integer >= 1, got {num_classes!r}")
    spec = load_spec(spec)
    p = plan(spec)
    stem = nn.Sequential(*(_make(e, spec, p.dims) for e in p.stem))
    stages = nn.Sequential(
        *(nn.Sequential(*(_make(e, spec, p.dims) for e in stage)) for stage in p.stages)
    )
    d = spec["defaults"]
    norm_kwargs = {"eps": d["norm_eps"], "momentum": d["norm_momentum"], "groups": d["norm_groups"]}

    def cna(in_chs: int, out_chs: int, kernel: int, **kw: Any) -> ConvNormAct:
        """A conv -> norm -> act with the spec's defaults (head conv, auxiliary heads)."""
        kw.setdefault("act", spec["head"]["act"])
        return ConvNormAct(
            in_chs,
            out_chs,
            kernel,
            dims=p.dims,
            norm=d["norm"],
            norm_position=d["norm_position"],
            norm_kwargs=norm_kwargs,
            **kw,
        )

    conv = cna(p.head_chs, p.head_conv, 1) if p.head_conv is not None else None
    head = Head(spec["head"], p.head_chs, p.head_size, p.dims, num_classes, conv)
    aux = {i: AuxHead(a, chs, size, cna, num_classes) for i, (chs, size, a) in p.aux.items()}
    model = Network(stem, stages, head, spec, aux)
    _init(model, spec["init"]["scheme"], spec["init"]["zero_init_residual"])
    return model
