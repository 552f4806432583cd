"""Writers for the export formats: ONNX, TorchScript, state_dict (.pt with its spec).

Every file is written atomically (:func:`workers.files.atomic_write`), so a crash never
leaves a half-written export under the final name.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.export import meta as _meta
from workers.files import atomic_write

FILE_NAMES = {
    "onnx": "model.onnx",
    "torchscript": "model.torchscript.pt",
    "state_dict": "model.state_dict.pt",
}
DYNAMO_MIN_OPSET = 18  # torch's dynamo exporter has no translations below 18 (it upgrades silently)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress prints and deprecation chatter."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def write_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    *,
    metadata: dict[str, Any],
    opset: int = 17,
    dynamic_batch: bool = False,
) -> str:
    """Export ``model`` to ONNX at ``path``; return the exporter used ("dynamo" or "torchscript").

    The dynamo exporter (``torch.export`` + onnxscript) is tried first when the opset allows
    it (>= 18); below that, or when it fails, the TorchScript-based exporter is used.
    """
    import onnx

    exporter = "torchscript"

    def write(tmp: Path) -> None:
        nonlocal exporter
        raw = tmp.with_name(tmp.name + ".raw")
        try:
            if opset >= DYNAMO_MIN_OPSET:
                try:
                    _onnx_dynamo(model, example, raw, opset, dynamic_batch)
                    exporter = "dynamo"
                except Exception:  # noqa: BLE001 -- any dynamo failure falls back to the legacy exporter
                    _onnx_legacy(model, example, raw, opset, dynamic_batch)
            else:
                _onnx_legacy(model, example, raw, opset, dynamic_batch)
            proto = onnx.load(str(raw))
            entry = proto.metadata_props.add()
            entry.key, entry.value = _meta.META_KEY, _meta.dumps(metadata)
            proto.producer_name = f"nas ({exporter} exporter)"
            onnx.checker.check_model(proto)
            onnx.save(proto, str(tmp))
        finally:
            for extra in (raw, raw.with_name(raw.name + ".data")):
                with contextlib.suppress(FileNotFoundError):
                    extra.unlink()

    atomic_write(path, write)
    return exporter


def _onnx_dynamo(
    model: nn.Module, example: torch.Tensor, out: Path, opset: int, dynamic: bool
) -> None:
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    with _quiet():
        torch.onnx.export(
            model,
            (example,),
            str(out),
            dynamo=True,
            opset_version=opset,
            external_data=False,
            verbose=False,
            dynamic_shapes=shapes,
            input_names=["input"],
            output_names=["logits"],
        )


def _onnx_legacy(
    model: nn.Module, example: torch.Tensor, out: Path, opset: int, dynamic: bool
) -> None:
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None
    with _quiet():
        torch.onnx.export(
            model,
            (example,),
            str(out),
            dynamo=False,
            opset_version=opset,
            dynamic_axes=axes,
            input_names=["input"],
            output_names=["logits"],
        )


def write_torchscript(
    model: nn.Module, example: torch.Tensor, path: Path, *, metadata: dict[str, Any]
) -> None:
    """Trace ``model`` (specs are static graphs) and save it with the metadata as an extra file."""
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(model, (example,), check_trace=False)
    atomic_write(
        path,
        lambda tmp: torch.jit.save(
            traced, str(tmp), _extra_files={_meta.META_KEY: _meta.dumps(metadata)}
        ),
    )


def write_state_dict(model: nn.Module, path: Path, *, metadata: dict[str, Any]) -> None:
    """Save the wrapped model's state_dict with its metadata (spec included): plain data only,
    so it loads with ``torch.load(weights_only=True)``."""
    payload = {
        **metadata,
        "kind": "state_dict",
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
