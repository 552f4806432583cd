"""MLflow helpers for exports: find retrain runs and their checkpoints, register exports.

The registry lives in the same store as the tracking data (``sqlite:///<workdir>/mlflow.db``
by default). ``mlflow.register_model("runs:/...")`` in MLflow 3 only accepts LoggedModels, and
``mlflow.onnx.log_model`` infers pip requirements (slow, wants the network), so exports are
logged as a plain artifact folder of a run nested under the retrain run and registered with
``MlflowClient.create_model_version(source=<that folder>)``. When the export has an ONNX file
the folder is also an MLflow model (``MLmodel`` with the ``onnx`` / ``python_function``
flavours, written by ``mlflow.onnx.save_model`` with explicit requirements so that nothing
is inferred), carrying the model's signature and an input example: the registry's version
page shows its schema and ``mlflow.pyfunc.load_model("models:/NAME/VERSION")`` serves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.core.credentials import mask_url
from nas.core.errors import UsageError
from nas.tracking import store as mlflow_store

ARTIFACT_DIR = "export"


@dataclass(frozen=True)
class RegisteredVersion:
    """One model version in the registry, and the run holding its files."""

    name: str
    version: str
    run_id: str
    source: str


def checkpoint_of_run(run_id: str, tracking_uri: str) -> Path:
    """The checkpoint path a retrain run recorded in its ``nas.checkpoint`` tag (or param)."""
    from mlflow.exceptions import MlflowException

    try:
        run = mlflow_store.client(tracking_uri).get_run(run_id)
    except MlflowException as exc:
        raise UsageError(f"--run {run_id!r}: no such run in {mask_url(tracking_uri)}") from exc
    path = run.data.tags.get("nas.checkpoint") or run.data.params.get("nas.checkpoint")
    if not path:
        raise UsageError(
            f"--run {run_id!r}: the run has no 'nas.checkpoint' tag (is it a retrain run?)"
        )
    return Path(path)


def best_retrain_run(study: str, tracking_uri: str) -> str:
    """The retrain run of ``study`` with the highest test_acc (the newest among equals)."""
    client = mlflow_store.client(tracking_uri)
    exp = client.get_experiment_by_name(study)
    if exp is None:
        raise UsageError(
            f"--name {study!r}: no MLflow experiment of that name in {mask_url(tracking_uri)}"
        )
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string="tags.`nas.role` = 'retrain' and attributes.status = 'FINISHED'",
        order_by=["metrics.test_acc DESC", "attributes.start_time DESC"],
        max_results=1,
    )
    runs = [r for r in runs if "test_acc" in r.data.metrics]
    if not runs:
        raise UsageError(
            f"--best: study {study!r} has no finished retrain run with a test_acc (run `nas retrain` first)"
        )
    return runs[0].info.run_id


def _export_run(
    client: Any, study: str, parent_run_id: str | None, tracking_uri: str, tags: dict[str, str]
):
    """A run for the export files: nested under the retrain run when it is in this store."""
    from mlflow.exceptions import MlflowException

    parent = None
    if parent_run_id:
        try:
            parent = client.get_run(parent_run_id)
        except MlflowException:
            parent = None
    if parent is not None:
        experiment_id = parent.info.experiment_id
        tags = {**tags, "mlflow.parentRunId": parent_run_id}
    else:
        experiment_id = mlflow_store.experiment_id(client, study, tracking_uri)
    return client.create_run(
        experiment_id, tags={**tags, "mlflow.runName": "export", "nas.role": "export"}
    )


def mlflow_model_files(
    onnx_path: Path, example: Any, output: Any, dynamic_batch: bool, into: Path
) -> list[Path]:
    """The MLflow model description of an exported ONNX file, written under ``into``:
    ``MLmodel`` (signature: float32 ``input`` -> ``logits``, the batch axis -1 when dynamic),
    the input example and the environment files. ``data: model.onnx`` names the export's
    own file, which is logged beside them (``mlflow.onnx.save_model`` writes an identical
    copy, not kept)."""
    import mlflow.onnx
    import numpy as np
    import onnx
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    def spec(array: Any, name: str) -> TensorSpec:
        shape = (-1 if dynamic_batch else array.shape[0], *array.shape[1:])
        return TensorSpec(np.dtype("float32"), shape, name)

    signature = ModelSignature(Schema([spec(example, "input")]), Schema([spec(output, "logits")]))
    target = into / "mlflow_model"
    mlflow.onnx.save_model(
        onnx.load(str(onnx_path)),
        str(target),
        signature=signature,
        input_example=example,
        pip_requirements=["onnxruntime", "numpy"],
    )
    return [p for p in sorted(target.iterdir()) if p.name != onnx_path.name]


def register_export(
    files: dict[str, Path],
    model_card: Path,
    *,
    name: str,
    tracking_uri: str,
    study: str,
    parent_run_id: str | None = None,
    tags: dict[str, Any] | None = None,
    model_files: list[Path] | None = None,
) -> RegisteredVersion:
    """Log ``files``, the card and ``model_files`` (:func:`mlflow_model_files`) as artifacts
    of an export run, then add a new version of registered model ``name`` (created when
    missing) pointing at them, tagged with ``tags``."""
    from mlflow.exceptions import MlflowException

    client = mlflow_store.client(tracking_uri)
    str_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    run = _export_run(client, study, parent_run_id, tracking_uri, str_tags)
    run_id = run.info.run_id
    try:
        for path in [*files.values(), model_card, *(model_files or [])]:
            client.log_artifact(run_id, str(path), ARTIFACT_DIR)
        client.set_terminated(run_id, "FINISHED")
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{ARTIFACT_DIR}"
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description="Architectures found by nas search, exported and verified."
        )
    mv = client.create_model_version(name, source, run_id=run_id, tags=str_tags)
    return RegisteredVersion(name=name, version=str(mv.version), run_id=run_id, source=source)
