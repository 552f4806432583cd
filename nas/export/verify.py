"""Check an export against the PyTorch model it came from.

Inputs are random raw data at the dataset's scale (mean + std * N(0, 1) per channel), run
through the same loader ``nas predict`` uses; outputs must agree within rtol / atol.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from nas.export.loaders import load_export
from nas.export.model import DeployableModel

RTOL = 1e-3
ATOL = 1e-5


class ExportError(RuntimeError):
    """An export that could not be produced or trusted (the CLI exits 1, nothing is registered)."""


class VerificationError(ExportError):
    """An export whose outputs differ from PyTorch's beyond tolerance (exit code 1)."""

    def __init__(self, fmt: str, path: Path, max_abs_diff: float, batch: int) -> None:
        self.format, self.path, self.max_abs_diff, self.batch = fmt, path, max_abs_diff, batch
        super().__init__(
            f"{fmt} export {path} fails verification: max abs difference {max_abs_diff:.3g} "
            f"against PyTorch at batch {batch} (allowed: rtol {RTOL:g}, atol {ATOL:g})"
        )


def sample_inputs(model: DeployableModel, batch: int, seed: int = 0) -> np.ndarray:
    """Raw-scale random input for ``model``: N, C, *spec input size."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, model.mean.shape[1], *model.input_size)
    x = model.mean + model.std * torch.randn(shape, generator=g)
    return x.float().numpy()


def verify_export(
    path: Path,
    fmt: str,
    reference: DeployableModel,
    batch_sizes: Sequence[int],
    *,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> float:
    """Max abs difference between the export at ``path`` and ``reference`` over ``batch_sizes``;
    raises :class:`VerificationError` when any output is outside tolerance."""
    exported = load_export(path)
    worst = 0.0
    for i, n in enumerate(batch_sizes):
        x = sample_inputs(reference, n, seed=i)
        with torch.no_grad():
            want = reference(torch.from_numpy(x)).numpy()
        got = exported(x)
        if got.shape != want.shape:
            raise VerificationError(fmt, path, float("inf"), n)
        diff = float(np.max(np.abs(got - want))) if want.size else 0.0
        if not np.isfinite(diff):
            diff = float("inf")
        worst = max(worst, diff)
        if not np.allclose(got, want, rtol=rtol, atol=atol):
            raise VerificationError(fmt, path, diff, n)
    return worst
