"""Export a search's retrained model: the checkpoint found from the search's stores (the
best retrain run, a given run, or a checkpoint file), written under the search's folder,
verified and registered. ``nas export`` and the Python API (:mod:`nas.api`) both call
:func:`export_from_search`."""

from __future__ import annotations

from pathlib import Path

from nas.core.config import default_tracking_uri, search_tracking_uri
from nas.core.errors import UsageError
from nas.export.pipeline import DEFAULT_OPSET, ExportResult, export_checkpoint, parse_formats


def export_from_search(
    workdir: Path,
    name: str,
    *,
    formats: str = "onnx,torchscript",
    run_id: str | None = None,
    checkpoint: str | Path | None = None,
    out: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    register: bool = True,
    register_name: str | None = None,
    tracking_uri: str | None = None,
) -> tuple[ExportResult, str]:
    """(the export, the MLflow tracking URI it registered in). The checkpoint is
    ``checkpoint``, else retrain run ``run_id``'s, else the study's best retrain run's;
    registered as ``register_name`` (default ``nas-<name>``) unless ``register`` is False.
    Raises UsageError on bad input, ExportError
    when a writer or the verification fails (nothing registered)."""
    fmts = parse_formats(formats)  # a bad format fails before anything is loaded
    searched_uri = search_tracking_uri(workdir, name, tracking_uri)  # the search's, if any
    uri = searched_uri or default_tracking_uri(workdir)
    if not (checkpoint or tracking_uri or searched_uri) and not (workdir / "mlflow.db").is_file():
        raise UsageError(
            f"--workdir {str(workdir)!r}: no mlflow.db there; pass --checkpoint PATH or "
            "--tracking-uri"
        )
    path, run_id = _locate(name, uri, run_id, checkpoint)
    folder = Path(out) if out else workdir / name / "exports" / _export_id(path, run_id)
    result = export_checkpoint(
        path,
        fmts,
        folder,
        opset=opset,
        dynamic_batch=dynamic_batch,
        register_name=(register_name or f"nas-{name}") if register else None,
        tracking_uri=uri,
        run_id=run_id,
    )
    return result, uri


def _locate(
    name: str, tracking_uri: str, run_id: str | None, checkpoint: str | Path | None
) -> tuple[Path, str | None]:
    """(checkpoint path, retrain run id or None)."""
    from nas.tracking import model_registry as registry

    if checkpoint:
        return Path(checkpoint), None
    run_id = run_id or registry.best_retrain_run(name, tracking_uri)
    return registry.checkpoint_of_run(run_id, tracking_uri), run_id


def _export_id(checkpoint: Path, run_id: str | None) -> str:
    """Folder name of a default output: the retrain run id, else the trial number."""
    if run_id:
        return run_id
    from nas.export.model import read_checkpoint

    ckpt = read_checkpoint(checkpoint)
    if ckpt.get("run_id"):
        return str(ckpt["run_id"])
    return f"trial-{ckpt['trial']}" if ckpt.get("trial") is not None else checkpoint.stem
