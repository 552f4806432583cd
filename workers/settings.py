"""Training settings: one typed, validated object (nanoGPT-style config), built from the plain
dict that the sampler produces (docs/INTERFACES.md, "Training settings") and saved with
every checkpoint so a resumed or retrained run uses exactly the same recipe."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from search_spaces.space import OPTIMIZERS, TRAIN_CHECKS, TRAIN_DEFAULTS

D = TRAIN_DEFAULTS


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
        # The ranges a space may draw from are the ranges a run accepts: one table.
        for name, check in TRAIN_CHECKS.items():
            value = getattr(self, name)
            ok, converted = check.coerce(value)
            if isinstance(value, str) and check.kind != "str" or not (ok and check.test(converted)):
                raise bad(name, check.one)
        if not isinstance(self.flip, bool):
            raise bad("flip", "true or false")

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
        for name in (k for k, check in TRAIN_CHECKS.items() if check.kind == "float"):
            if isinstance(values.get(name), int) and not isinstance(values[name], bool):
                values[name] = float(values[name])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, the inverse of :meth:`from_dict`."""
        return asdict(self)

    def replace(self, **changes: Any) -> TrainSettings:
        """A validated copy with some fields changed."""
        return TrainSettings.from_dict({**self.to_dict(), **changes})
