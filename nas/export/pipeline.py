"""``export_checkpoint``: checkpoint -> verified export files + model card (+ registry entry)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas.core.errors import UsageError
from nas.core.progress import bar
from nas.export import meta as _meta
from nas.export import writers
from nas.export.card import render_model_card
from nas.export.model import DeployableModel, load_model_from_checkpoint
from nas.export.verify import ExportError, reference_outputs, sample_inputs, verify_export
from workers.files import atomic_write

FORMATS = tuple(writers.FILE_NAMES)  # onnx, torchscript, state_dict
DYNAMIC_BATCH_SIZES = [1, 2, 7]
FIXED_BATCH = 1
#: ONNX opset 17 by default: the TorchScript-based exporter writes it (the dynamo exporter
#: starts at 18), onnxruntime >= 1.13 and the common inference engines run it, and it is the
#: first opset with LayerNormalization. Every block the catalog builds exports at 17 (the
#: export-matrix test); --opset 18+ tries the dynamo exporter first.
DEFAULT_OPSET = 17
MODEL_CARD = "MODEL_CARD.md"


@dataclass
class ExportResult:
    """What an export produced. ``registered`` is {"name", "version"} or None."""

    files: dict[str, Path]
    max_abs_diff: dict[str, float]
    model_card: Path
    registered: dict[str, str] | None = None
    onnx_exporter: str | None = None
    spec_id: str = ""
    batch_sizes: list[int] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``nas export --json`` prints)."""
        return {
            "files": {k: str(v) for k, v in self.files.items()},
            "max_abs_diff": self.max_abs_diff,
            "model_card": str(self.model_card),
            "registered": self.registered,
            "onnx_exporter": self.onnx_exporter,
            "spec_id": self.spec_id,
            "batch_sizes": self.batch_sizes,
            "sizes": self.sizes,
            "seconds": round(self.seconds, 3),
        }


def parse_formats(formats: str | Iterable[str]) -> list[str]:
    """``"onnx,torchscript"`` or a list -> validated, de-duplicated list of formats."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for item in (i.strip().lower() for i in items):
        if item not in FORMATS:
            raise UsageError(
                f"--format {item!r}: expected a comma-separated list of {', '.join(FORMATS)}"
            )
        if item not in out:
            out.append(item)
    if not out:
        raise UsageError(f"--format: expected a comma-separated list of {', '.join(FORMATS)}")
    return out


def export_checkpoint(
    checkpoint_path: str | Path,
    formats: str | Iterable[str],
    out_dir: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    register_name: str | None = None,
    tracking_uri: str | None = None,
    run_id: str | None = None,
) -> ExportResult:
    """Export a ``nas retrain`` checkpoint, verify every file against PyTorch, write the model
    card, and (when ``register_name``) register the files in MLflow's model registry.

    ``run_id`` is the retrain run the export run nests under (default: the checkpoint's).
    Raises :class:`~nas.export.verify.ExportError` when a writer fails and its subclass
    :class:`~nas.export.verify.VerificationError` when an export disagrees with PyTorch
    (nothing is registered then); :class:`~nas.core.errors.UsageError` on bad input.
    """
    start = time.perf_counter()
    fmts = parse_formats(formats)
    if not 7 <= int(opset) <= 23:
        raise UsageError(f"--opset {opset}: expected an ONNX opset between 7 and 23")
    model, ckpt = load_model_from_checkpoint(checkpoint_path)
    out = Path(out_dir).resolve()
    batch = None if dynamic_batch else FIXED_BATCH
    metadata = _meta.export_metadata(ckpt, batch)
    files, diffs, exporter, batch_sizes = write_verified(
        model, metadata, fmts, out, opset=int(opset), dynamic_batch=dynamic_batch
    )

    card_text = render_model_card(
        ckpt,
        spec_id=metadata["spec_id"],
        files=files,
        max_abs_diff=diffs,
        onnx_exporter=exporter,
        batch_sizes=batch_sizes,
    )
    card = atomic_write(out / MODEL_CARD, lambda tmp: tmp.write_text(card_text, encoding="utf-8"))

    result = ExportResult(
        files=files,
        max_abs_diff=diffs,
        model_card=card,
        onnx_exporter=exporter,
        spec_id=metadata["spec_id"],
        batch_sizes=batch_sizes,
        sizes={fmt: p.stat().st_size for fmt, p in files.items()},
    )
    if register_name:
        result.registered = _register(
            result, ckpt, register_name, tracking_uri, run_id, model, dynamic_batch
        )
    result.seconds = time.perf_counter() - start
    return result


def write_verified(
    model: DeployableModel,
    metadata: dict[str, Any],
    formats: list[str],
    out: Path,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
) -> tuple[dict[str, Path], dict[str, float], str | None, list[int]]:
    """Write ``model`` (eval mode) in each of ``formats`` under ``out`` and verify every file
    against it; returns (files, max abs diff per format, ONNX exporter used, batch sizes).

    Raises :class:`ExportError` when a writer fails, :class:`VerificationError` when a file
    disagrees with PyTorch.
    """
    out.mkdir(parents=True, exist_ok=True)
    batch_sizes = list(DYNAMIC_BATCH_SIZES) if dynamic_batch else [FIXED_BATCH]
    # trace at batch 2 for a dynamic axis: a size-1 dim would be specialised as a constant
    example = torch.from_numpy(sample_inputs(model, 2 if dynamic_batch else FIXED_BATCH, 1234))
    files: dict[str, Path] = {}
    exporter = None
    steps = bar(2 * len(formats), "export and verify", unit="step")
    for fmt in formats:
        steps.set_postfix_str(f"writing {fmt}")
        path = out / writers.FILE_NAMES[fmt]
        try:
            if fmt == "onnx":
                exporter = writers.write_onnx(
                    model,
                    example,
                    path,
                    metadata=metadata,
                    opset=opset,
                    dynamic_batch=dynamic_batch,
                )
            elif fmt == "torchscript":
                writers.write_torchscript(model, example, path, metadata=metadata)
            else:
                writers.write_state_dict(model, path, metadata=metadata)
        except Exception as exc:  # an op the exporter cannot translate, a full disk...
            steps.close()
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise ExportError(
                f"{fmt} export to {path} failed: {type(exc).__name__}: {first}"
            ) from exc
        files[fmt] = path
        steps.update(1)
    expected = reference_outputs(model, batch_sizes)
    diffs = {}
    with steps:
        for fmt, path in files.items():
            steps.set_postfix_str(f"verifying {fmt}")
            diffs[fmt] = verify_export(path, fmt, model, batch_sizes, expected=expected)
            steps.update(1)
    return files, diffs, exporter, batch_sizes


def _register(
    result: ExportResult,
    ckpt: dict[str, Any],
    name: str,
    tracking_uri: str | None,
    run_id: str | None,
    model: DeployableModel,
    dynamic_batch: bool,
) -> dict[str, str]:
    import tempfile

    from nas.tracking import model_registry as registry

    if tracking_uri is None:
        import mlflow

        tracking_uri = mlflow.get_tracking_uri()
    cost = ckpt.get("cost") or {}
    metrics = ckpt.get("metrics") or {}
    tags: dict[str, Any] = {
        "spec_id": result.spec_id,
        "params": cost.get("params"),
        "macs": cost.get("macs"),
        "test_acc": metrics.get("test_acc"),
        "formats": ",".join(result.files),
        **{f"max_abs_diff.{k}": f"{v:.3g}" for k, v in result.max_abs_diff.items()},
    }
    if result.onnx_exporter:
        tags["onnx_exporter"] = result.onnx_exporter
    with tempfile.TemporaryDirectory(prefix="nas-mlmodel-") as tmp:
        model_files = None
        if "onnx" in result.files:  # the registered version is an MLflow model with a signature
            example = sample_inputs(model, 1 if dynamic_batch else FIXED_BATCH, 1234)
            with torch.no_grad():
                output = model(torch.from_numpy(example)).numpy()
            model_files = registry.mlflow_model_files(
                result.files["onnx"], example, output, dynamic_batch, Path(tmp)
            )
        version = registry.register_export(
            result.files,
            result.model_card,
            name=name,
            tracking_uri=tracking_uri,
            study=str(ckpt.get("study") or "nas-exports"),
            parent_run_id=run_id or ckpt.get("run_id"),
            tags={k: v for k, v in tags.items() if v is not None},
            model_files=model_files,
        )
    return {"name": version.name, "version": version.version, "run_id": version.run_id}
