"""What a training run reports: per-epoch metrics and the final result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from torch import nn

STATUSES = ("ok", "diverged", "oom", "invalid")


@dataclass(frozen=True)
class EpochMetrics:
    """One finished epoch. ``epoch`` counts from 1; ``images_per_s`` is training throughput
    (evaluation excluded); ``seconds`` is the epoch's wall time, evaluation included."""

    epoch: int
    train_loss: float
    val_loss: float
    val_acc: float
    images_per_s: float
    seconds: float
    lr: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """How a run ended. ``status`` is ``ok`` or the reason the trial failed (``diverged``,
    ``oom``, ``invalid``), with ``reason`` a one-line explanation; a failure never raises.
    ``epochs`` counts completed epochs (resumed ones included)."""

    status: str
    reason: str = ""
    epochs: int = 0
    val_acc: float = float("nan")
    val_loss: float = float("nan")
    test_acc: float | None = None
    train_images_per_s: float = 0.0
    seconds: float = 0.0
    history: list[EpochMetrics] = field(default_factory=list)
    model: nn.Module | None = None
    params: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (no model)."""
        d = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("model", "history")
        }
        d["history"] = [m.to_dict() for m in self.history]
        return d
