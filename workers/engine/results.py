"""What a training run reports: per-epoch metrics and the final result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from torch import nn

from workers.status import TrialStatus


@dataclass(frozen=True)
class EpochMetrics:
    """One report: after an epoch, or after a search's fidelity point inside one. ``epoch``
    is how many epochs were trained (from 1; a fraction inside an epoch), ``samples`` how
    many training samples; ``images_per_s`` is training throughput (evaluation excluded);
    ``seconds`` the wall time since the previous report, evaluation included."""

    epoch: int | float
    train_loss: float
    val_loss: float
    val_acc: float
    images_per_s: float
    seconds: float
    lr: float = 0.0
    samples: int = 0
    val_acc_std: float | None = None  # spread of val_acc over the folds (k-fold evaluation)
    folds: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """How a run ended. ``status`` is ``completed`` or the reason the trial failed
    (``diverged``, ``oom``, ``invalid``), with ``reason`` a one-line explanation; a failure
    never raises. ``epochs`` counts trained epochs (resumed ones included; a fraction when a
    run ended inside one), ``samples`` the training samples seen."""

    status: TrialStatus
    reason: str = ""
    epochs: int | float = 0
    samples: int = 0
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
        return self.status == TrialStatus.COMPLETED

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (no model)."""
        d = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("model", "history")
        }
        d["status"] = str(self.status)
        d["history"] = [m.to_dict() for m in self.history]
        return d
