"""Optimizers and per-step learning-rate schedules built from :class:`TrainSettings`."""

from __future__ import annotations

import math

import torch
from torch import nn

from workers.settings import TrainSettings

ONECYCLE_MIN_WARMUP = 0.25  # fraction of the run spent rising (Smith & Topin 2019 use ~0.3)
ONECYCLE_START = 1 / 25  # initial lr / peak, as torch's OneCycleLR (div_factor=25)
STEP_MILESTONES = (0.5, 0.75)
RANK_WARMUP_SHARE = 0.5  # a search trial's warmup ends by half of its lowest rung  # fractions of the post-warmup run where lr drops by 10x


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and norm scales (1-D parameters), as timm / nanoGPT do."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(model: nn.Module, s: TrainSettings) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam, AdamW or RMSProp over ``model``'s parameters."""
    groups = _param_groups(model, s.weight_decay)
    if s.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=s.lr, momentum=s.momentum, nesterov=s.nesterov and s.momentum > 0
        )
    if s.optimizer == "adam":
        return torch.optim.Adam(groups, lr=s.lr)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=s.lr)
    return torch.optim.RMSprop(groups, lr=s.lr, momentum=s.momentum)


class Schedule:
    """Learning-rate multiplier per optimizer step: linear warmup, then cosine / one-cycle
    (linear up, linear down) / step (x0.1 at 50% and 75%) / constant. Its whole state is
    the step counter, so a resume restores it exactly."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        s: TrainSettings,
        steps_per_epoch: int,
        epochs: float,
        first_rank_step: int | None = None,
    ):
        self.optimizer = optimizer
        self.kind = s.schedule
        self.peak = s.lr
        self.total = max(1, int(round(steps_per_epoch * epochs)))
        # a short run (a search's low fidelity) warms up for at most a quarter of it
        self.warmup = min(self.total // 4, int(round(s.warmup_epochs * steps_per_epoch)))
        if self.kind == "onecycle":
            self.warmup = max(self.warmup, int(ONECYCLE_MIN_WARMUP * self.total))
        if first_rank_step is not None:
            # a search's trial is ranked first at its lowest rung: it must be trained at the
            # peak by then, not still warming up towards a peak set for the full fidelity
            self.warmup = min(self.warmup, int(RANK_WARMUP_SHARE * first_rank_step))
        self.step_count = 0
        self._apply()

    def factor(self, step: int) -> float:
        """lr / peak at ``step``."""
        if step < self.warmup:
            start = ONECYCLE_START if self.kind == "onecycle" else 0.0
            return start + (1 - start) * (step + 1) / self.warmup
        t = (step - self.warmup) / max(1, self.total - self.warmup)
        t = min(t, 1.0)
        if self.kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * t))
        if self.kind == "onecycle":
            return max(1.0 - t, 1e-4)
        if self.kind == "step":
            return 0.1 ** sum(t >= m for m in STEP_MILESTONES)
        return 1.0

    def _apply(self) -> None:
        lr = self.peak * self.factor(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def state_dict(self) -> dict:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])
        self._apply()
