"""Helpers for the export / predict tests: a small retrained-looking checkpoint whose
network comes from a hand-written spec through ``search_spaces.build``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
            "norm_position": "before_act",
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


def make_checkpoint(
    path: Path,
    spec: dict[str, Any] | None = None,
    *,
    num_classes: int = 3,
    run_id: str | None = None,
    seed: int = 0,
    test_acc: float = 0.9,
    input_range: list[float] | None = None,
) -> Path:
    """A ``nas retrain``-style checkpoint with random (but non-trivial) weights."""
    spec = search_spaces.load_spec(spec or spec_2d())  # canonical, as retrain saves it
    torch.manual_seed(seed)
    net = search_spaces.build(spec, num_classes)
    for m in net.modules():  # non-default running stats, so eval-mode norms matter
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    channels = spec["input"]["channels"]
    payload = {
        "kind": "retrain",
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
        "input_range": input_range,
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
