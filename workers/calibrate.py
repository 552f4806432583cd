"""How long one training sample takes on this worker: the timed step a search's plan starts
from (:mod:`nas.driver.plan`).

A few training steps of the given spec on random inputs of the data's shape, after one
untimed step (allocation, kernel selection), with the trial's batch size and thread count.
No data set is loaded and nothing is kept.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F

from search_spaces.scaling import scaled_size
from workers.engine.loop import build_model, default_device

TIMED_STEPS = 3


def seconds_per_sample(
    spec: dict[str, Any],
    num_classes: int,
    channels: int,
    size: tuple[int, ...],
    *,
    batch_size: int,
    threads: int = 0,
    device: str | None = None,
) -> float:
    """Wall seconds of one training sample (forward, backward, SGD step) of ``spec``."""
    if threads > 0:
        torch.set_num_threads(threads)
    dev = torch.device(device) if device else default_device()
    model, resolution = build_model(spec, num_classes)
    model = model.to(dev).train()
    shape = (batch_size, channels, *scaled_size(list(size), resolution))
    x = torch.randn(shape, device=dev)
    y = torch.randint(0, num_classes, (batch_size,), device=dev)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    for _ in range(TIMED_STEPS):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return (time.perf_counter() - t0) / (TIMED_STEPS * batch_size)
