"""EfficientNet compound scaling (Tan & Le 2019), applied at spec time.

Width multiplies channel counts (rounded to a divisor, never more than 10% down, as timm's
``make_divisible``), depth multiplies stage repeats (``ceil``), resolution is recorded in the
spec: the training engine resizes its inputs and :func:`search_spaces.count` uses it.
"""

from __future__ import annotations

import math

from search_spaces.layers import make_divisible

__all__ = ["round_channels", "scale_depth", "compound", "scaled_size"]


def round_channels(channels: int, multiplier: float = 1.0, divisor: int = 8) -> int:
    """``channels * multiplier`` rounded to the nearest multiple of ``divisor`` (at least
    ``divisor``), bumped up one ``divisor`` if that rounded down by more than 10%.
    A multiplier of exactly 1.0 leaves the count unchanged."""
    if multiplier == 1.0:
        return int(channels)
    return make_divisible(channels * multiplier, divisor)


def scale_depth(repeats: int, multiplier: float = 1.0) -> int:
    """Stage repeats scaled by the depth multiplier: ``ceil(repeats * multiplier)``."""
    return int(math.ceil(repeats * multiplier))


def compound(
    phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15
) -> tuple[float, float, float]:
    """(depth, width, resolution) multipliers ``alpha**phi, beta**phi, gamma**phi``
    (EfficientNet's grid-searched alpha, beta, gamma as defaults)."""
    return alpha**phi, beta**phi, gamma**phi


def scaled_size(size: list[int], resolution: float) -> list[int]:
    """Input size after the resolution multiplier (rounded to the nearest int, at least 1)."""
    return [max(1, int(round(n * resolution))) for n in size]
