"""``nas predict``: round trips through every export format and input kind; bad files refused."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from test_export_support import make_checkpoint, spec_1d

from nas.cli import main
from nas.export import export_checkpoint, load_model_from_checkpoint


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export of every format, shared by the tests (they only read it)."""
    tmp_path = tmp_path_factory.mktemp("export")
    ckpt = make_checkpoint(tmp_path / "ckpt.pt")
    res = export_checkpoint(
        ckpt, "onnx,torchscript,state_dict", tmp_path / "out", dynamic_batch=True
    )
    model, _ = load_model_from_checkpoint(ckpt)
    return res, model


def _predict_json(capsys, *argv):
    assert main(["predict", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "state_dict"])
def test_round_trip_npy(exported, tmp_path, capsys, fmt):
    res, model = exported
    x = np.random.default_rng(1).uniform(0, 255, (4, 1, 12, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    probs = torch.softmax(model(torch.from_numpy(x)), 1).detach().numpy()
    out = _predict_json(capsys, res.files[fmt], tmp_path / "x.npy", "--top", "2")
    assert [r["top"][0]["class"] for r in out] == probs.argmax(1).tolist()
    assert len(out[0]["top"]) == 2 and out[0]["top"][0]["name"].startswith("class")
    np.testing.assert_allclose([r["top"][0]["prob"] for r in out], probs.max(1), rtol=1e-3)


def test_single_sample_npz_and_image(exported, tmp_path, capsys):
    res, model = exported
    img = np.random.default_rng(2).integers(0, 256, (12, 12), dtype=np.uint8)
    Image.fromarray(img, mode="L").save(tmp_path / "x.png")
    np.savez(tmp_path / "x.npz", x=img)  # one sample, channel axis left out
    want = int(model(torch.from_numpy(img[None, None].astype(np.float32))).argmax())
    for inp in ("x.png", "x.npz"):
        out = _predict_json(capsys, res.files["onnx"], tmp_path / inp)
        assert len(out) == 1 and out[0]["top"][0]["class"] == want
    assert main(["predict", str(res.files["onnx"]), str(tmp_path / "x.png")]) == 0
    assert capsys.readouterr().out.startswith(f"0: {want} (class{want}) p=")


def test_series_csv_and_ts(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "ckpt.pt", spec_1d())
    res = export_checkpoint(ckpt, "torchscript", tmp_path / "out", dynamic_batch=True)
    model, _ = load_model_from_checkpoint(ckpt)
    x = np.random.default_rng(3).normal(30, 70, (3, 2, 16)).round(3)
    np.savetxt(tmp_path / "x.csv", x.reshape(3, -1), delimiter=",")
    lines = ["# test", "@problemName tiny", "@classLabel true a b", "@data"]
    lines += [":".join(",".join(map(str, ch)) for ch in s) + ":a" for s in x]
    (tmp_path / "x.ts").write_text("\n".join(lines) + "\n")
    want = model(torch.from_numpy(x.astype(np.float32))).argmax(1).tolist()
    for inp in ("x.csv", "x.ts"):
        out = _predict_json(capsys, res.files["torchscript"], tmp_path / inp)
        assert [r["top"][0]["class"] for r in out] == want


def _foreign_files(tmp_path, exported):
    res, _ = exported
    onnx_bytes = res.files["onnx"].read_bytes()
    rnd = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    files = {
        "random.onnx": rnd,
        "truncated.onnx": onnx_bytes[: len(onnx_bytes) // 2],
        "random.pt": rnd,
        "pickle.pt": pickle.dumps({"format": "nas-export", "state_dict": [1, 2]}),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign_torch.pt")
    return [*files, "foreign_torch.pt", "missing.onnx"]


def test_corrupted_or_foreign_exports_refused(exported, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 12, 12), np.float32))
    for name in _foreign_files(tmp_path, exported):
        rc = main(["predict", str(tmp_path / name), str(tmp_path / "x.npy")])
        err = capsys.readouterr().err
        assert rc == 2, name
        assert len(err.strip().splitlines()) == 1 and name in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    "content, needle",
    [
        (np.zeros((2, 3, 12, 12), np.float32), "shape [2, 3, 12, 12]"),
        (np.full((1, 1, 12, 12), np.nan, np.float32), "NaN"),
        (b"not an array", "not a readable NumPy file"),
    ],
)
def test_bad_inputs_refused(exported, tmp_path, capsys, content, needle):
    res, _ = exported
    path = tmp_path / "x.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content)
    assert main(["predict", str(res.files["state_dict"]), str(path)]) == 2
    assert needle in capsys.readouterr().err


def test_bad_top_refused(exported, tmp_path, capsys):
    res, _ = exported
    np.save(tmp_path / "x.npy", np.zeros((1, 12, 12), np.float32))
    assert main(["predict", str(res.files["onnx"]), str(tmp_path / "x.npy"), "--top", "9"]) == 2
    assert "--top 9" in capsys.readouterr().err


def test_inputs_on_another_scale_are_refused(tmp_path, capsys):
    """A model trained on 0..255 refuses sklearn's raw digits (0..16) and 0..1 floats, with
    one line and exit 2; inputs on its scale pass; --any-range overrides."""
    ckpt = make_checkpoint(tmp_path / "ckpt.pt", input_range=[0.0, 255.0])
    res = export_checkpoint(ckpt, "onnx", tmp_path / "out", dynamic_batch=True)
    rng = np.random.default_rng(3)
    for name, x, ok in (
        ("raw", rng.integers(0, 17, (5, 1, 12, 12)).astype(np.float32), False),
        ("unit", rng.uniform(0, 1, (5, 1, 12, 12)).astype(np.float32), False),
        ("wide", rng.uniform(-300, 600, (5, 1, 12, 12)).astype(np.float32), False),
        ("same", rng.uniform(0, 255, (5, 1, 12, 12)).astype(np.float32), True),
    ):
        np.save(tmp_path / f"{name}.npy", x)
        code = main(["predict", str(res.files["onnx"]), str(tmp_path / f"{name}.npy")])
        err = capsys.readouterr().err.strip().splitlines()
        if ok:
            assert code == 0 and not err
        else:
            assert code == 2 and len(err) == 1, err
            assert "trained on 0..255" in err[0] and "--any-range" in err[0]
    assert main(["predict", str(res.files["onnx"]), str(tmp_path / "raw.npy"), "--any-range"]) == 0
