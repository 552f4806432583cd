"""Exports land in MLflow's model registry (SQLite store in tmp_path), a version per export."""

from __future__ import annotations

import json

from mlflow import MlflowClient
from test_export_support import make_checkpoint

from nas.cli import main
from nas.core.config import default_tracking_uri as tracking_uri_for
from nas.tracking import store as mlflow_store


def _retrain_run(client: MlflowClient, study: str, checkpoint, test_acc: float) -> str:
    """What ``nas retrain`` leaves behind: a finished run tagged with its checkpoint."""
    exp = client.get_experiment_by_name(study)
    location = mlflow_store.artifact_location(client.tracking_uri)  # beside the store
    exp_id = exp.experiment_id if exp else client.create_experiment(study, location)
    run = client.create_run(
        exp_id, tags={"nas.role": "retrain", "nas.study": study, "nas.checkpoint": str(checkpoint)}
    )
    client.log_metric(run.info.run_id, "test_acc", test_acc)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def test_export_registers_a_new_version_each_time(tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    uri = tracking_uri_for(work)
    client = MlflowClient(uri, registry_uri=uri)
    ck_a = make_checkpoint(tmp_path / "a.pt", seed=0, test_acc=0.8)
    ck_b = make_checkpoint(tmp_path / "b.pt", seed=1, test_acc=0.95)
    run_a = _retrain_run(client, "search", ck_a, 0.8)
    run_b = _retrain_run(client, "search", ck_b, 0.95)

    base = ["export", "--workdir", str(work), "--format", "onnx,state_dict", "--json"]
    assert main([*base, "--run", run_a]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["registered"]["name"] == "nas-search" and first["registered"]["version"] == "1"
    assert first["files"]["onnx"].startswith(str(work / "search" / "exports" / run_a))

    assert main([*base, "--best"]) == 0  # the highest test_acc: run_b
    second = json.loads(capsys.readouterr().out)
    assert second["registered"]["version"] == "2"
    assert run_b in second["files"]["onnx"]

    mv = client.get_model_version("nas-search", "2")
    assert {"spec_id", "params", "macs", "test_acc"} <= set(mv.tags)
    assert mv.tags["test_acc"] == "0.95" and mv.tags["spec_id"] == second["spec_id"]
    export_run = client.get_run(mv.run_id)
    assert export_run.data.tags["mlflow.parentRunId"] == run_b
    assert export_run.data.tags["nas.role"] == "export"
    logged = {f.path for f in client.list_artifacts(mv.run_id, "export")}
    ours = {"export/model.onnx", "export/model.state_dict.pt", "export/MODEL_CARD.md"}
    assert ours | {"export/MLmodel", "export/input_example.json"} <= logged

    # the version is an MLflow model: a signature, an input example, and it serves
    import mlflow
    import numpy as np

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    info = mlflow.models.get_model_info("models:/nas-search/2")
    inputs, outputs = info.signature.inputs.to_dict(), info.signature.outputs.to_dict()
    assert inputs[0]["name"] == "input" and inputs[0]["tensor-spec"]["dtype"] == "float32"
    assert outputs[0]["name"] == "logits"
    assert info.saved_input_example_info["artifact_path"] == "input_example.json"
    model_dir = client.download_artifacts(mv.run_id, "export")
    example = mlflow.models.Model.load(model_dir).load_input_example(model_dir)
    served = mlflow.pyfunc.load_model("models:/nas-search/2").predict(example)
    logits = next(iter(served.values())) if isinstance(served, dict) else served
    assert np.asarray(logits).shape[-1] == outputs[0]["tensor-spec"]["shape"][-1]


def test_custom_register_name_and_no_run(tmp_path, capsys):
    """--checkpoint without a retrain run in the store: a top-level export run, custom name."""
    work = tmp_path / "work"
    ckpt = make_checkpoint(tmp_path / "c.pt", run_id="not-in-this-store")
    argv = ["export", "--workdir", str(work), "--checkpoint", str(ckpt), "--format", "torchscript"]
    assert main([*argv, "--register-name", "my-model", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["registered"]["name"] == "my-model" and data["registered"]["version"] == "1"
    assert data["files"]["torchscript"] == str(
        work / "search" / "exports" / "not-in-this-store" / "model.torchscript.pt"
    )


def test_run_and_best_errors_exit_2(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    assert main(["export", "--workdir", str(work), "--best"]) == 2
    assert "mlflow.db" in capsys.readouterr().err
    uri = tracking_uri_for(work)
    MlflowClient(uri).create_experiment("search")
    assert main(["export", "--workdir", str(work), "--run", "0123abcd"]) == 2
    assert "--run '0123abcd'" in capsys.readouterr().err
    assert main(["export", "--workdir", str(work), "--best"]) == 2
    assert "no finished retrain run" in capsys.readouterr().err
