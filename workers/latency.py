"""Inference latency of a model: warm up, then the median of timed repeats per batch size.
Cheap by design (a small time budget per batch size), so every trial can report it."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn

WARMUP = 2
MIN_REPEATS = 3
MAX_REPEATS = 20
BUDGET_S = 0.15  # timed seconds per batch size (beyond the minimum repeats)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    device: str | torch.device,
    batch_sizes: Sequence[int] = (1, 64),
) -> dict[str, float]:
    """``{"latency_ms_b1": ..., "latency_ms_b64": ...}``: median forward time in milliseconds
    in eval mode for each batch size; ``input_shape`` is one sample's (C, *spatial)."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    try:
        for b in batch_sizes:
            x = torch.randn(int(b), *(int(s) for s in input_shape), device=device)
            for _ in range(WARMUP):
                model(x)
            _sync(device)
            times: list[float] = []
            spent = 0.0
            while len(times) < MIN_REPEATS or (len(times) < MAX_REPEATS and spent < BUDGET_S):
                t0 = time.perf_counter()
                model(x)
                _sync(device)
                dt = time.perf_counter() - t0
                times.append(dt)
                spent += dt
            out[f"latency_ms_b{b}"] = statistics.median(times) * 1000.0
    finally:
        model.train(was_training)
    return out
