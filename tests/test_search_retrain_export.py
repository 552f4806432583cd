"""Search -> retrain -> export -> predict on digits, through the CLI, against the real stores."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from nas.cli import main

pytestmark = pytest.mark.slow


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_search_retrain_export_predict(tmp_path, ray_session, capsys):
    work = str(tmp_path)
    assert (
        main(
            [
                "search",
                "--workdir",
                work,
                "--budget",
                "3trials",
                "--epochs",
                "2",
                "--grace-epochs",
                "2",
                "--seed",
                "4",
            ]
        )
        == 0
    )
    capsys.readouterr()

    assert main(["retrain", "--workdir", work, "--best", "--epochs", "3", "--json"]) == 0
    retrained = _json(capsys)
    assert {"test_acc", "checkpoint", "run_id"} <= set(retrained)
    assert 0.0 <= retrained["test_acc"] <= 1.0
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(retrained["run_id"])
    assert run.data.tags["nas.role"] == "retrain"
    assert run.data.tags["nas.trial_run_id"], "linked to its trial's run"
    assert run.data.metrics["test_acc"] == pytest.approx(retrained["test_acc"])

    # --trial takes any trial with an architecture; an unknown one is a clear error
    assert main(["retrain", "--workdir", work, "--trial", "999"]) == 2

    out = tmp_path / "exports"
    assert (
        main(
            [
                "export",
                "--workdir",
                work,
                "--run",
                retrained["run_id"],
                "--format",
                "onnx,torchscript,state_dict",
                "--out",
                str(out),
                "--dynamic-batch",
                "--json",
            ]
        )
        == 0
    )
    exported = _json(capsys)
    assert set(exported["files"]) == {"onnx", "torchscript", "state_dict"}
    for fmt in ("onnx", "torchscript"):
        assert exported["max_abs_diff"][fmt] <= 1e-4
    versions = client.search_model_versions("name = 'nas-search'")
    assert len(versions) == 1

    # the export classifies raw digits the way the retrained model was tested
    import workers

    data = workers.load_dataset("digits")
    x = data.test_x[:16].numpy().astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", exported["files"]["onnx"], str(tmp_path / "x.npy"), "--json"]) == 0
    predicted = _json(capsys)
    rows = predicted if isinstance(predicted, list) else predicted.get("predictions", predicted)
    assert len(rows) == 16

    # a corrupted export is refused with one line and exit 2
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    assert main(["predict", str(bad), str(tmp_path / "x.npy")]) == 2


def test_quick_start_chain_hands_over_its_winner(tmp_path, ray_session, capsys):
    """The README's chain as a new user runs it, seed 0: search 90 s, retrain the best, export
    it to ONNX and TorchScript. Whatever the search picked must export and verify."""
    work = str(tmp_path)
    assert main(["search", "--workdir", work, "--budget", "90s", "--seed", "0"]) == 0
    capsys.readouterr()
    assert main(["retrain", "--workdir", work, "--best", "--json"]) == 0
    capsys.readouterr()
    code = main(["export", "--workdir", work, "--best", "--format", "onnx,torchscript", "--json"])
    assert code == 0
    exported = _json(capsys)
    assert set(exported["files"]) == {"onnx", "torchscript"}
    assert exported["registered"] is not None
