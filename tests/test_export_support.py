"""Helpers for the export / predict tests: a small retrained-looking checkpoint.

The network comes from a hand-written spec through ``search_spaces.build``; until the
catalog's builder exists in this checkout, a tiny stand-in builder is patched in.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import search_spaces
from workers import save_checkpoint


def spec_2d(resolution: float = 1.0) -> dict[str, Any]:
    """A small 1-channel 12x12 image network: conv stem, one basic-block stage, avg head."""
    return {
        "version": 1,
        "name": "tiny-2d",
        "input": {"dims": 2, "channels": 1, "size": [12, 12]},
        "defaults": {
            "act": "relu",
            "norm": "batch",
            "norm_position": "after",
            "padding_mode": "zeros",
        },
        "stem": [{"type": "conv", "out": 8, "kernel": 3, "stride": 1}],
        "stages": [{"block": {"type": "basic"}, "out": 8, "repeats": 1, "stride": 2}],
        "head": {"pool": "avg", "hidden": [], "dropout": 0.0},
        "scaling": {"width": 1.0, "depth": 1.0, "resolution": resolution, "divisor": 8},
        "init": {"scheme": "kaiming", "zero_init_residual": False},
    }


def spec_1d() -> dict[str, Any]:
    """A small 2-channel series network of length 16."""
    spec = spec_2d()
    spec["name"] = "tiny-1d"
    spec["input"] = {"dims": 1, "channels": 2, "size": [16]}
    return spec


def _standin_build(spec: dict[str, Any], num_classes: int) -> nn.Module:
    dims, c = spec["input"]["dims"], spec["input"]["channels"]
    conv, bn = {1: (nn.Conv1d, nn.BatchNorm1d), 2: (nn.Conv2d, nn.BatchNorm2d)}[dims]
    pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d}[dims]
    return nn.Sequential(
        conv(c, 8, 3, padding=1), bn(8), nn.ReLU(), conv(8, 8, 3, stride=2, padding=1), bn(8), nn.ReLU(),
        pool(1), nn.Flatten(), nn.Linear(8, num_classes),
    )  # fmt: skip


@pytest.fixture
def catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    """``search_spaces.build`` / ``spec_id``, with a stand-in while the catalog is missing."""
    if not hasattr(search_spaces, "build"):
        monkeypatch.setattr(search_spaces, "build", _standin_build, raising=False)
    if not hasattr(search_spaces, "spec_id"):
        monkeypatch.setattr(
            search_spaces,
            "spec_id",
            lambda s: hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest()[:12],
            raising=False,
        )


def make_checkpoint(
    path: Path,
    spec: dict[str, Any] | None = None,
    *,
    num_classes: int = 3,
    run_id: str | None = None,
    seed: int = 0,
    test_acc: float = 0.9,
) -> Path:
    """A ``nas retrain``-style checkpoint with random (but non-trivial) weights."""
    spec = spec or spec_2d()
    torch.manual_seed(seed)
    net = search_spaces.build(spec, num_classes)
    for m in net.modules():  # non-default running stats, so eval-mode norms matter
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    channels = spec["input"]["channels"]
    payload = {
        "format": "nas-checkpoint",
        "version": 1,
        "spec": spec,
        "num_classes": num_classes,
        "state_dict": net.state_dict(),
        "train": {"optimizer": "sgd", "lr": 0.1, "batch_size": 64, "schedule": "cosine"},
        "dataset": {"name": "tiny", "data_dir": None},
        "normalize": {
            "mean": [33.0 + i for i in range(channels)],
            "std": [78.0 + i for i in range(channels)],
        },
        "class_names": [f"class{k}" for k in range(num_classes)],
        "metrics": {"test_acc": test_acc, "val_acc": test_acc - 0.01},
        "cost": {
            "params": sum(p.numel() for p in net.parameters()),
            "macs": 12345,
            "latency_ms_b1": 0.5,
            "latency_ms_b64": 3.0,
        },
        "run_id": run_id,
        "trial": 7,
        "study": "search",
    }
    save_checkpoint(path, payload)
    return path
