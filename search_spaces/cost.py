"""Cost model: parameters, MACs, an activation-memory estimate and per-layer output shapes.

The network is built on PyTorch's ``meta`` device (no memory, no arithmetic) with the same
:func:`search_spaces.build`, so the parameter count is exactly what ``build`` produces, and one
batch-1 forward pass with hooks on the leaf modules records shapes. A count takes a few
milliseconds to tens of milliseconds; the first one in a process also pays PyTorch's one-off
set-up of meta kernels (about a second). MACs are counted the
conventional way (what torchvision publishes as "GFLOPS"): multiply-accumulates of
convolutions (``out elements * in_chs / groups * kernel``), transposed convolutions
(``in elements * out_chs / groups * kernel``) and linear layers; norms, activations, pools,
additions and SE gating are not counted.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from search_spaces.builder import build
from search_spaces.scaling import scaled_size
from search_spaces.spec import SpecError, load_spec, spec_id

__all__ = ["CostReport", "count", "layer_macs"]

_SKIP = (nn.Identity, nn.Dropout, nn.Flatten, nn.Sequential, nn.ModuleList)
#: Reports kept by :func:`count` (spec id, classes, input shape -> report): a search counts a
#: spec when it samples it and again for its MLflow summary, and warm starts and the plan
#: count the same specs repeatedly. A count is tens of milliseconds of meta-device work.
CACHE_SIZE = 256
_reports: OrderedDict[tuple[str, int, tuple[int, ...] | None], CostReport] = OrderedDict()
_reports_lock = threading.Lock()


@dataclass
class CostReport:
    """Totals for batch size 1 and one row per leaf layer (name, type, out_shape, params, macs).
    ``params`` and ``macs`` are the network that predicts (what an export holds);
    ``aux_params`` are its training-only auxiliary classifiers (GoogLeNet, Inception v3),
    shown apart. ``activation_bytes`` sums the float32 outputs of every leaf layer: an
    upper-bound estimate of what a training forward pass keeps per sample."""

    params: int
    macs: int
    activation_bytes: int
    input_shape: list[int] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    aux_params: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return asdict(self)


def layer_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """Multiply-accumulates of one leaf module for one forward pass (0 for uncounted kinds)."""
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        kernel = math.prod(module.kernel_size)
        return inp.numel() * module.out_channels // module.groups * kernel
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = math.prod(module.kernel_size)
        return out.numel() * module.in_channels // module.groups * kernel
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    return 0


def count(
    spec: Mapping[str, Any] | str, num_classes: int, input_shape: Sequence[int] | None = None
) -> CostReport:
    """Cost of ``spec`` with ``num_classes`` outputs for one input of ``input_shape``
    (channels, *size). By default the spec's input, resized by ``scaling.resolution``; a given
    ``input_shape`` is used as is. The same spec is counted once (the last
    :data:`CACHE_SIZE` are kept); each call gets its own copy of the report."""
    spec = load_spec(spec)
    shape = None if input_shape is None else tuple(int(v) for v in input_shape)
    key = (spec_id(spec), int(num_classes), shape)
    with _reports_lock:
        report = _reports.get(key)
        if report is not None:
            _reports.move_to_end(key)
    if report is None:
        report = _count(spec, num_classes, input_shape)
        with _reports_lock:
            _reports[key] = report
            if len(_reports) > CACHE_SIZE:
                _reports.popitem(last=False)
    return replace(
        report, input_shape=list(report.input_shape), layers=[dict(r) for r in report.layers]
    )


def _count(spec: dict[str, Any], num_classes: int, input_shape: Sequence[int] | None) -> CostReport:
    """:func:`count` without the cache: a meta-device build and forward pass."""
    dims, channels = spec["input"]["dims"], spec["input"]["channels"]
    if input_shape is None:
        shape = [channels, *scaled_size(spec["input"]["size"], spec["scaling"]["resolution"])]
    else:
        shape = [int(v) for v in input_shape]
        if len(shape) != dims + 1 or shape[0] != channels or min(shape) < 1:
            raise SpecError(
                f"input_shape: expected {channels} channels and {dims} sizes >= 1, got {shape}"
            )
        spec = {
            **spec,
            "input": {**spec["input"], "size": shape[1:]},
            "scaling": {**spec["scaling"], "resolution": 1.0, "phi": None},
        }
        spec = load_spec(spec)
    with torch.device("meta"):
        model = build(spec, num_classes)
    model.eval()
    layers: list[dict[str, Any]] = []
    totals = {"macs": 0, "bytes": 0}

    def hook(name: str):
        def fn(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            macs = layer_macs(module, args[0], out)
            own = sum(p.numel() for p in module.parameters(recurse=False))
            totals["macs"] += macs
            totals["bytes"] += out.numel() * 4
            layers.append(
                {
                    "name": name,
                    "type": type(module).__name__,
                    "out_shape": list(out.shape[1:]),
                    "params": own,
                    "macs": macs,
                }
            )

        return fn

    handles = [
        m.register_forward_hook(hook(name))
        for name, m in model.named_modules()
        if not list(m.children()) and not isinstance(m, _SKIP)
    ]
    with torch.no_grad():
        model(torch.empty(1, *shape, device="meta"))
    for h in handles:
        h.remove()
    aux = sum(p.numel() for n, p in model.named_parameters() if n.startswith("aux_heads."))
    params = sum(p.numel() for p in model.parameters()) - aux
    return CostReport(params, totals["macs"], totals["bytes"], shape, layers, aux)
