"""Transfer learning: a retrain that starts from the weights of an earlier retrain or export.

``nas retrain --init-from CHECKPOINT`` builds the network to train (a search's trial, or
with ``--dataset`` the checkpoint's own architecture on other data), copies every tensor of
the checkpoint whose name and shape match, and trains from there. The stem (or the first
stage of a network without a stem) must match, else the two networks have nothing in common
worth copying; a head for another number of classes is new. ``--freeze stem,stages:N`` keeps the stem and the first N stages as they
were loaded (no gradient; their batch norms still adapt their running statistics to the new
data, as torchvision's fine-tuning recipes do).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.core.errors import UsageError


@dataclass(frozen=True)
class Source:
    """The weights to start from: their architecture, state and training settings."""

    path: Path
    spec: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    train: dict[str, Any] | None
    num_classes: int


def read_source(path: str | Path) -> Source:
    """A ``nas retrain`` checkpoint or a ``nas export`` state_dict file."""
    from nas.export.model import check_checkpoint
    from workers import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--init-from {str(path)!r}: no such file")
    try:
        raw = load_checkpoint(path)
    except Exception as exc:  # a foreign or damaged file: one line
        raise UsageError(
            f"--init-from {str(path)!r}: cannot be read ({type(exc).__name__})"
        ) from exc
    if isinstance(raw, dict) and raw.get("kind") == "state_dict" and "spec" in raw:
        state = {  # the export wraps the network with its input normalisation
            k.removeprefix("network."): v
            for k, v in raw["state_dict"].items()
            if k.startswith("network.")
        }
        return Source(path, raw["spec"], state, None, int(raw["num_classes"]))
    ckpt = check_checkpoint(raw, path)  # a retrain checkpoint, or one line saying what is wrong
    return Source(path, ckpt["spec"], ckpt["state_dict"], ckpt.get("train"), ckpt["num_classes"])


def parse_freeze(text: str | None) -> tuple[bool, int]:
    """``"stem,stages:2"`` -> (freeze the stem, freeze the first 2 stages)."""
    if not text:
        return False, 0
    stem, stages = False, 0
    for part in (p.strip() for p in text.split(",")):
        match = re.fullmatch(r"stages:(\d+)", part)
        if part == "stem":
            stem = True
        elif match:
            stages = int(match.group(1))
        else:
            raise UsageError(
                f"--freeze {text!r}: expected a comma list of stem and stages:N (e.g. stem,stages:2)"
            )
    return stem, stages


def load_matching(model: nn.Module, source: Source) -> list[str]:
    """Copy every tensor of ``source`` whose name and shape match into ``model``; returns the
    parts copied whole (``stem``, ``stages.0`` ...). UsageError unless the stem (or, in a
    network without one, the first stage) matches."""
    own = model.state_dict()
    copied = {k: v for k, v in source.state_dict.items() if k in own and own[k].shape == v.shape}
    # the stem, or the first stage of a network without one (VGG, AlexNet, NiN)
    first = "stem." if any(k.startswith("stem.") for k in own) else "stages.0."
    if any(k not in copied for k in own if k.startswith(first)):
        raise UsageError(
            f"--init-from {str(source.path)!r}: its first layers ({first.rstrip('.')}) do not "
            "match this network's (the two must share at least the stem, or the first stage)"
        )
    model.load_state_dict({**own, **copied})
    parts = list(
        dict.fromkeys(".".join(k.split(".")[: 1 if k.startswith("stem.") else 2]) for k in own)
    )
    whole = [p for p in parts if all(k in copied for k in own if k.startswith(p + "."))]
    return [p for p in whole if p == "stem" or p.startswith("stages.")]


def freeze(model: nn.Module, stem: bool, stages: int) -> int:
    """No gradient for the stem and the first ``stages`` stages; returns how many tensors."""
    n_stages = len(model.stages)
    if stages > n_stages:
        raise UsageError(f"--freeze stages:{stages}: the network has {n_stages} stages")
    frozen = list(model.stem.parameters()) if stem else []
    for stage in list(model.stages)[:stages]:
        frozen += list(stage.parameters())
    for p in frozen:
        p.requires_grad_(False)
    return len(frozen)
