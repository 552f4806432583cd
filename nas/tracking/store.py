"""One rule for the MLflow experiment of a study and its artifact root, used by the search,
retrain and export alike (the default store is ``nas.core.config.default_tracking_uri``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

__all__ = ["EXPERIMENT_TAGS", "artifact_location", "experiment_id", "client"]

#: Tags of a study's experiment. ``mlflow.experimentKind`` marks it as model training, not
#: GenAI (MLflow's web app defines the values). MLflow 3.17's UI reads it only where its
#: GenAI / model-training switch is off; with the switch (the default) the link's
#: ``workflowType`` parameter decides (:func:`nas.tracking.view.link`).
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def artifact_location(tracking_uri: str) -> str | None:
    """``mlartifacts/`` beside an SQLite store (the workdir's); the server's default else."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
    return None


def client(tracking_uri: str) -> Any:
    """An ``MlflowClient`` for tracking and the model registry of ``tracking_uri``."""
    from mlflow import MlflowClient

    logging.getLogger("alembic").setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def experiment_id(mlflow_client: Any, study: str, tracking_uri: str) -> str:
    """The id of the study's experiment, created with :func:`artifact_location` if new."""
    exp = mlflow_client.get_experiment_by_name(study)
    if exp is not None:
        return exp.experiment_id
    return mlflow_client.create_experiment(
        study, artifact_location=artifact_location(tracking_uri), tags=EXPERIMENT_TAGS
    )
