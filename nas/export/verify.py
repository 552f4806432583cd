"""Check an export against the PyTorch model it came from.

Inputs are random raw data at the dataset's scale (mean + std * N(0, 1) per channel), run
through the same loader ``nas predict`` uses; outputs must agree within rtol / atol.

A network can be ill-conditioned in float32: norms over a few values (a 2x2 map, a group of
one channel) amplify rounding, so two correct float32 runtimes disagree by more than atol.
The tolerance therefore also allows ten times PyTorch's own float32 error on the batch,
measured against the same network in float64: about zero for a well-conditioned network (so
rtol / atol decide), far below what a wrong export produces, and wide enough for the spread
of rounding between two runtimes (onnxruntime's error was up to 8x PyTorch's on sampled
networks with group norm over 2x2 maps). The report gives that allowance.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from nas.export.loaders import load_export
from nas.export.model import DeployableModel

RTOL = 1e-3
ATOL = 1e-5
ROUNDING_FACTOR = 10.0


class ExportError(RuntimeError):
    """An export that could not be produced or trusted (the CLI exits 1, nothing is registered)."""


class VerificationError(ExportError):
    """An export whose outputs differ from PyTorch's beyond tolerance (exit code 1)."""

    def __init__(
        self, fmt: str, path: Path, max_abs_diff: float, batch: int, allowance: float = 0.0
    ) -> None:
        self.format, self.path, self.max_abs_diff, self.batch = fmt, path, max_abs_diff, batch
        super().__init__(
            f"{fmt} export {path} fails verification: max abs difference {max_abs_diff:.3g} "
            f"against PyTorch at batch {batch} (allowed: rtol {RTOL:g}, atol {ATOL:g}, plus "
            f"{allowance:.3g} for float32 rounding, {ROUNDING_FACTOR:g} x PyTorch's own)"
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
    expected: list[tuple[np.ndarray, np.ndarray, float]] | None = None,
) -> float:
    """Max abs difference between the export at ``path`` and ``reference`` over ``batch_sizes``;
    raises :class:`VerificationError` when any output is outside ``atol + rtol * |reference|``
    plus the rounding allowance of the module docstring. ``expected`` is
    :func:`reference_outputs` when the caller verifies several files of one model."""
    exported = load_export(path)
    worst = 0.0
    for x, want, allowance in expected or reference_outputs(reference, batch_sizes):
        n = len(x)
        got = exported(x)
        if got.shape != want.shape:
            raise VerificationError(fmt, path, float("inf"), n)
        diff = np.abs(got.astype(np.float64) - want)
        worst_here = float(diff.max()) if want.size else 0.0
        if not np.isfinite(worst_here):
            worst_here = float("inf")
        worst = max(worst, worst_here)
        if not np.all(diff <= atol + rtol * np.abs(want) + allowance):
            raise VerificationError(fmt, path, worst_here, n, allowance)
    return worst


def reference_outputs(
    reference: DeployableModel, batch_sizes: Sequence[int]
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(input, PyTorch output, rounding allowance) per batch size: what every export of
    ``reference`` is checked against, computed once for all formats."""
    exact = copy.deepcopy(reference).double()
    out = []
    for i, n in enumerate(batch_sizes):
        x = sample_inputs(reference, n, seed=i)
        with torch.no_grad():
            want = reference(torch.from_numpy(x)).numpy()
            error = float32_error(want, exact(torch.from_numpy(x).double()).numpy())
        out.append((x, want, ROUNDING_FACTOR * error))
    return out


def float32_error(float32: np.ndarray, float64: np.ndarray) -> float:
    """The largest difference between a float32 and a float64 forward pass of the same
    network on the same batch: how far rounding alone moves its outputs."""
    return float(np.abs(float32.astype(np.float64) - float64).max(initial=0.0))
