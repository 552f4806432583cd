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
from search_spaces.layers import AdaptivePool, SqueezeExcite, conv_cls, get_act
from search_spaces.spec import Entry, load_spec, plan

__all__ = ["build", "Network", "Head", "SpatialPyramidPool"]


class SpatialPyramidPool(nn.Module):
    """Spatial pyramid pooling (He et al. 2014): adaptive max pools to ``levels`` grids,
    flattened and concatenated, so any input size gives a fixed-length vector."""

    def __init__(self, dims: int, levels: list[int]) -> None:
        super().__init__()
        self.pools = nn.ModuleList(AdaptivePool("max", dims, level) for level in levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([p(x).flatten(1) for p in self.pools], 1)


class Head(nn.Module):
    """Classifier head: global avg / max pool, flatten (optionally adaptive-avg-pooled to
    ``flatten_size``) or spatial pyramid pooling; then hidden ``Linear -> act -> Dropout``
    layers, dropout and the final linear. With ``classifier: conv`` (SqueezeNet): dropout ->
    1x1 conv to the classes -> act -> global pool."""

    def __init__(
        self, head: Mapping[str, Any], in_chs: int, size: list[int], dims: int, num_classes: int
    ) -> None:
        super().__init__()
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
        return self.fc(self.pool(self.pre(x)))


class Network(nn.Module):
    """stem -> stages -> head, built from a canonical spec (kept as ``self.spec``)."""

    def __init__(self, stem: nn.Sequential, stages: nn.Sequential, head: Head, spec: dict) -> None:
        super().__init__()
        self.stem, self.stages, self.head = stem, stages, head
        self.spec = spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


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
        se = SqueezeExcite(entry.out_chs, entry.opts["se"], dims=dims, act=entry.opts["act"])
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
    head = Head(spec["head"], p.head_chs, p.head_size, p.dims, num_classes)
    model = Network(stem, stages, head, spec)
    _init(model, spec["init"]["scheme"], spec["init"]["zero_init_residual"])
    return model
