"""Export to ONNX / TorchScript / state_dict, verified against PyTorch; tampering is caught."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from test_export_support import make_checkpoint, spec_2d

from nas.cli import main
from nas.export import (
    VerificationError,
    export_checkpoint,
    load_export,
    load_model_from_checkpoint,
    verify_export,
)
from nas.export.verify import sample_inputs


def test_dynamic_batch_export_matches_pytorch(tmp_path):
    """All three formats with a dynamic batch axis (and resolution scaling in the graph)."""
    ckpt = make_checkpoint(tmp_path / "ckpt.pt", spec_2d(resolution=1.5))
    res = export_checkpoint(
        ckpt, "onnx,torchscript,state_dict", tmp_path / "out", opset=18, dynamic_batch=True
    )
    assert set(res.files) == {"onnx", "torchscript", "state_dict"}
    assert res.batch_sizes == [1, 2, 7]
    assert res.onnx_exporter in ("dynamo", "torchscript")
    assert res.registered is None
    for fmt, path in res.files.items():
        assert path.is_file() and res.sizes[fmt] > 0
        assert 0.0 <= res.max_abs_diff[fmt] < 1e-3
    model, _ = load_model_from_checkpoint(ckpt)
    assert model.target_size == (18, 18)
    x = sample_inputs(model, 5, seed=3)
    want = model(torch.from_numpy(x)).detach().numpy()
    for path in res.files.values():
        np.testing.assert_allclose(load_export(path)(x), want, rtol=1e-3, atol=1e-5)
    card = res.model_card.read_text()
    for needle in ("tiny-2d", "12,345", "test_acc", "onnx", "max abs diff", "0.5 ms"):
        assert needle in card
    assert not list((tmp_path / "out").glob(".*tmp*"))  # atomic writes leave no temporaries


def test_fixed_batch_legacy_exporter(tmp_path):
    """Opset 17 is below what the dynamo exporter emits: the TorchScript-based one is used."""
    ckpt = make_checkpoint(tmp_path / "ckpt.pt")
    res = export_checkpoint(ckpt, ["onnx", "torchscript"], tmp_path / "out")
    assert res.onnx_exporter == "torchscript" and res.batch_sizes == [1]
    proto = onnx.load(str(res.files["onnx"]))
    assert proto.opset_import[0].version == 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    model = load_export(res.files["onnx"])  # a fixed-batch graph still takes any N (chunked)
    x = np.random.default_rng(0).uniform(0, 255, (3, 1, 12, 12)).astype(np.float32)
    assert model(x).shape == (3, 3)


def _tamper_onnx(path):
    proto = onnx.load(str(path))
    init = max(proto.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    arr = numpy_helper.to_array(init) * 1.5 + 0.1
    init.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), init.name))
    onnx.save(proto, str(path))


def test_tampered_export_fails_verification(tmp_path):
    ckpt = make_checkpoint(tmp_path / "ckpt.pt")
    res = export_checkpoint(ckpt, "onnx", tmp_path / "out")
    _tamper_onnx(res.files["onnx"])
    model, _ = load_model_from_checkpoint(ckpt)
    with pytest.raises(VerificationError) as err:
        verify_export(res.files["onnx"], "onnx", model, [1])
    assert err.value.format == "onnx" and err.value.max_abs_diff > 1e-3
    assert "onnx export" in str(err.value) and "max abs difference" in str(err.value)


def test_cli_verification_failure_exits_1_and_registers_nothing(tmp_path, monkeypatch, capsys):
    from mlflow import MlflowClient

    from nas.export import writers

    real = writers._onnx_legacy

    def broken(model, example, out, opset, dynamic):
        real(model, example, out, opset, dynamic)
        _tamper_onnx(out)

    monkeypatch.setattr(writers, "_onnx_legacy", broken)
    ckpt = make_checkpoint(tmp_path / "ckpt.pt")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rc = main(
        [
            "export",
            "--checkpoint",
            str(ckpt),
            "--format",
            "onnx",
            "--out",
            str(tmp_path / "o"),
            "--tracking-uri",
            uri,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert len(err.strip().splitlines()) == 1 and "onnx" in err and "max abs difference" in err
    assert "Traceback" not in err
    if (tmp_path / "mlflow.db").exists():
        assert MlflowClient(uri, registry_uri=uri).search_registered_models() == []


def test_cli_json(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "ckpt.pt")
    out = tmp_path / "o"
    rc = main(
        [
            "export",
            "--checkpoint",
            str(ckpt),
            "--format",
            "torchscript,state_dict",
            "--out",
            str(out),
            "--no-register",
            "--json",
        ]
    )
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["files"]) == {"torchscript", "state_dict"}
    assert set(data["max_abs_diff"]) == {"torchscript", "state_dict"}
    assert data["model_card"].endswith("MODEL_CARD.md") and data["registered"] is None


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--format", "onnx,tflite"], "--format 'tflite'"),
        (["--opset", "3"], "--opset 3"),
    ],
)
def test_cli_bad_values_exit_2(tmp_path, capsys, argv, needle):
    ckpt = make_checkpoint(tmp_path / "ckpt.pt")
    rc = main(
        ["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"), "--no-register", *argv]
    )
    assert rc == 2 and needle in capsys.readouterr().err


def test_foreign_checkpoint_refused(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 10)
    assert (
        main(["export", "--checkpoint", str(bad), "--no-register", "--out", str(tmp_path / "o")])
        == 2
    )
    err = capsys.readouterr().err
    assert "bad.pt" in err and "Traceback" not in err


def test_writer_failure_is_one_line_exit_1(tmp_path, monkeypatch, capsys):
    from nas.export import writers

    def boom(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::frobnicate\nlong details")

    monkeypatch.setattr(writers, "write_torchscript", boom)
    ckpt = make_checkpoint(tmp_path / "ckpt.pt")
    argv = ["export", "--checkpoint", str(ckpt), "--format", "torchscript", "--no-register"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert (
        len(err.strip().splitlines()) == 1 and "torchscript export" in err and "frobnicate" in err
    )


def test_export_preprocesses_like_the_training_engine(tmp_path):
    """Raw digits in, the engine's own test accuracy out: the graph's normalisation and
    resolution resize are the training engine's (workers.augment)."""
    import search_spaces
    import workers

    data = workers.load_dataset("digits")
    spec = spec_2d(resolution=1.5)
    spec["input"] = {"dims": 2, "channels": data.channels, "size": list(data.size)}
    spec = search_spaces.load_spec(spec)
    trained = workers.train(
        spec, data, {"optimizer": "adam", "lr": 0.01, "batch_size": 128}, epochs=1, use_test=True
    )
    assert trained.ok
    payload = {
        "format": "nas-checkpoint",
        "version": 1,
        "spec": spec,
        "num_classes": data.num_classes,
        "state_dict": trained.model.state_dict(),
        "normalize": {"mean": data.mean.flatten().tolist(), "std": data.std.flatten().tolist()},
        "metrics": {"test_acc": trained.test_acc},
    }
    workers.save_checkpoint(tmp_path / "ckpt.pt", payload)
    res = export_checkpoint(tmp_path / "ckpt.pt", "onnx", tmp_path / "out", dynamic_batch=True)
    logits = load_export(res.files["onnx"])(data.test_x.float().numpy())
    acc = float((logits.argmax(1) == data.test_y.numpy()).mean())
    assert acc == pytest.approx(trained.test_acc, abs=1.5 / len(data.test_y))
