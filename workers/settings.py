"""Training settings: one typed, validated object (nanoGPT-style config), built from the plain
dict that the sampler produces (docs/INTERFACES.md, "Training settings") and saved with
every checkpoint so a resumed or retrained run uses exactly the same recipe."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from search_spaces.space import OPTIMIZERS, SCHEDULES, TRAIN_DEFAULTS

D = TRAIN_DEFAULTS
# (field, check, what is accepted) for the numeric fields
_NUMBER_RULES = (
    ("lr", lambda v: v > 0, "a number > 0"),
    ("momentum", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("weight_decay", lambda v: v >= 0, "a number >= 0"),
    ("warmup_epochs", lambda v: v >= 0, "a number >= 0"),
    ("label_smoothing", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("augment", lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    ("grad_clip", lambda v: v >= 0, "a number >= 0 (0 = off)"),
)


@dataclass(frozen=True)
class TrainSettings:
    """How one architecture is trained. The defaults are ``search_spaces.space.TRAIN_DEFAULTS``
    (stated once, with their reasons, for the spaces and the engine alike)."""

    optimizer: str = D["optimizer"]  # sgd | adam | adamw | rmsprop
    lr: float = D["lr"]
    momentum: float = D["momentum"]
    nesterov: bool = D["nesterov"]
    weight_decay: float = D["weight_decay"]
    batch_size: int = D["batch_size"]
    schedule: str = D["schedule"]  # cosine | onecycle | step | constant
    warmup_epochs: float = D["warmup_epochs"]
    label_smoothing: float = D["label_smoothing"]
    augment: float = D["augment"]
    grad_clip: float = D["grad_clip"]
    flip: bool = True  # horizontal flip for images (turn off for digits / text-like data)

    def __post_init__(self) -> None:
        def bad(name: str, accepted: str) -> ValueError:
            return ValueError(f"train.{name}={getattr(self, name)!r}: expected {accepted}")

        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", " | ".join(OPTIMIZERS))
        if self.schedule not in SCHEDULES:
            raise bad("schedule", " | ".join(SCHEDULES))
        for name, ok, accepted in _NUMBER_RULES:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise bad(name, "a finite number")
            if not ok(v):
                raise bad(name, accepted)
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size < 1
        ):
            raise bad("batch_size", "an integer >= 1")
        for name in ("nesterov", "flip"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "true or false")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TrainSettings:
        """Validate a plain dict (unknown key or bad value -> ValueError naming it)."""
        if d is None:
            return cls()
        if isinstance(d, TrainSettings):
            return d
        if not isinstance(d, dict):
            raise ValueError(f"train settings: {type(d).__name__}, expected a mapping")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"train.{unknown[0]}: unknown setting, expected one of {sorted(known)}"
            )
        values = dict(d)
        for name, _, _ in _NUMBER_RULES:
            if isinstance(values.get(name), int) and not isinstance(values[name], bool):
                values[name] = float(values[name])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, the inverse of :meth:`from_dict`."""
        return asdict(self)

    def replace(self, **changes: Any) -> TrainSettings:
        """A validated copy with some fields changed."""
        return TrainSettings.from_dict({**self.to_dict(), **changes})
