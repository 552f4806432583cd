"""One trial evaluated again at full fidelity with another seed: a Ray task's body.

The search's selection resists noise by training its best few configurations once more
(:mod:`nas.driver.repeat_best`): another seed draws other initial weights and another data
order, and on small data another split into folds. Nothing is reported to Ray Tune.
"""

from __future__ import annotations

from typing import Any

import torch

from workers.data import Dataset
from workers.engine import train, train_folds
from workers.trial import TrialConfig


def evaluate_again(config: dict[str, Any], data: Dataset, seed: int) -> float | None:
    """The validation accuracy of ``config`` (a :class:`TrialConfig` dict) trained to its
    full fidelity with ``seed``; None when that training did not complete."""
    cfg = TrialConfig.from_dict(config)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.folds > 1:
        result = train_folds(cfg.spec, data, cfg.train, folds=cfg.folds,
                             samples=cfg.max_samples, device=device, seed=seed)  # fmt: skip
    else:
        result = train(cfg.spec, data, cfg.train, samples=cfg.max_samples, device=device, seed=seed)
    return float(result.val_acc) if result.ok else None
