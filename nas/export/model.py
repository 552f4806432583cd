"""The deployable model: raw data in, logits out.

Exports must run without side information, so the graph carries what training did to the
data before the network saw it: per-channel normalisation with the training split's mean /
std, and the spec's resolution scaling (EfficientNet's compound scaling resizes the input).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.core.errors import UsageError
from search_spaces.scaling import scaled_size

#: What retrain checkpoints before RETRAIN_KIND carried in their payload (still read).
LEGACY_FORMAT = "nas-checkpoint"
_INTERP_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


class DeployableModel(nn.Module):
    """normalise -> resize (only when resolution != 1) -> network.

    Input: N, C, *spatial raw values in the dataset's units (uint8 images as float 0..255,
    series / volumes as float) at the spec's input size.
    """

    def __init__(
        self,
        network: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        input_size: Sequence[int],
        resolution: float = 1.0,
    ) -> None:
        super().__init__()
        dims = len(input_size)
        if dims not in _INTERP_MODE:
            raise ValueError(f"input size {list(input_size)}: expected 1, 2 or 3 spatial dims")
        if len(mean) != len(std):
            raise ValueError(f"normalize: {len(mean)} means but {len(std)} stds")
        if any(float(s) <= 0 for s in std):
            raise ValueError(f"normalize.std {list(std)}: every std must be > 0")
        view = (1, len(mean)) + (1,) * dims
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).view(view))
        self.register_buffer("std", torch.tensor([float(s) for s in std]).view(view))
        self.input_size = tuple(int(s) for s in input_size)
        target = tuple(scaled_size(list(self.input_size), float(resolution)))
        # the same rule as training (workers.augment.Augmenter.resize)
        self.target_size: tuple[int, ...] | None = None if target == self.input_size else target
        self.mode = _INTERP_MODE[dims]
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        if self.target_size is not None:
            x = F.interpolate(x, size=self.target_size, mode=self.mode, align_corners=False)
        return self.network(x)

    @classmethod
    def from_spec(
        cls,
        spec: dict[str, Any],
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> DeployableModel:
        """Build the network from its spec (``search_spaces.build``) and wrap it."""
        import search_spaces

        network = search_spaces.build(spec, num_classes)
        return cls(
            network,
            mean,
            std,
            input_size=spec["input"]["size"],
            resolution=float(spec.get("scaling", {}).get("resolution", 1.0)),
        )


def input_shape(spec: dict[str, Any]) -> tuple[int, ...]:
    """C, *spatial of the raw input the exported model takes (the spec's input size)."""
    inp = spec["input"]
    return (int(inp["channels"]), *(int(s) for s in inp["size"]))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load through ``workers.load_checkpoint`` (weights_only) and check it is a nas-checkpoint;
    :class:`~nas.core.errors.UsageError` naming the file otherwise."""
    from workers import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint {str(path)!r}: no such file")
    try:
        ckpt = load_checkpoint(path)
    except Exception as exc:  # corrupt / foreign file: one line, never a traceback
        raise UsageError(f"checkpoint {str(path)!r}: cannot be read ({_first_line(exc)})") from exc
    return check_checkpoint(ckpt, path)


def check_checkpoint(ckpt: Any, path: str | Path) -> dict[str, Any]:
    """``ckpt`` (loaded from ``path``) if it is a nas retrain checkpoint; UsageError naming
    the file otherwise."""
    from workers.checkpoint import RETRAIN_KIND

    if not isinstance(ckpt, dict) or not (
        ckpt.get("kind") == RETRAIN_KIND or ckpt.get("format") == LEGACY_FORMAT
    ):
        raise UsageError(f"checkpoint {str(path)!r}: not a nas retrain checkpoint")
    missing = [k for k in ("spec", "num_classes", "state_dict", "normalize") if k not in ckpt]
    if missing:
        raise UsageError(f"checkpoint {str(path)!r}: missing {', '.join(missing)}")
    return ckpt


def load_model_from_checkpoint(path: str | Path) -> tuple[DeployableModel, dict[str, Any]]:
    """Rebuild the retrained network from a ``nas retrain`` checkpoint, wrapped for export.

    Returns the model in eval mode on CPU and the checkpoint dict.
    """
    path = Path(path)
    ckpt = read_checkpoint(path)
    norm = ckpt["normalize"]
    try:
        model = DeployableModel.from_spec(
            ckpt["spec"], int(ckpt["num_classes"]), norm["mean"], norm["std"]
        )
        model.network.load_state_dict(ckpt["state_dict"], strict=True)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise UsageError(
            f"checkpoint {str(path)!r}: does not rebuild its model ({_first_line(exc)})"
        ) from exc
    return model.eval(), ckpt


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
