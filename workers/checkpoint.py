"""Checkpoint files: written atomically (:func:`workers.files.atomic_write`) so a killed
worker never leaves a half-written checkpoint, and read with
``torch.load(weights_only=True)`` so a file cannot run code. Payloads are wrapped with a
format tag; a foreign or corrupted file is refused with :class:`CheckpointError`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from workers.files import atomic_write

#: The one checkpoint file format: ``{"format": CHECKPOINT_FORMAT, "payload": {...}}``.
CHECKPOINT_FORMAT = "nas-checkpoint/1"
#: ``payload["kind"]`` of a ``nas retrain`` checkpoint (a trial's checkpoint holds the
#: engine's resume state instead, ``workers.engine.loop.STATE_FORMAT``), and its version.
RETRAIN_KIND = "retrain"
RETRAIN_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupted, or not written by this project."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists, dicts) atomically to ``path``."""
    if not isinstance(payload, dict):
        raise TypeError(f"checkpoint payload: {type(payload).__name__}, expected a dict")
    wrapped = {"format": CHECKPOINT_FORMAT, "payload": payload}
    return atomic_write(path, lambda tmp: torch.save(wrapped, tmp))


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """The payload saved by :func:`save_checkpoint`; CheckpointError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: unreadable checkpoint ({first[:200]}), expected a file written by save_checkpoint"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint (foreign file)")
    return data["payload"]
