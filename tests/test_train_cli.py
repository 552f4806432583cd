"""``nas train``: a real one-epoch run on digits, and bad input -> exit 2 with one line."""

from __future__ import annotations

import json

import pytest
import yaml

import search_spaces
from nas.cli import main

if not hasattr(search_spaces, "build"):
    pytest.skip("search_spaces.build not available yet (block catalog)", allow_module_level=True)

SPEC = {
    "version": 1,
    "input": {"dims": 2, "channels": 1, "size": [8, 8]},
    "stem": [{"type": "conv", "out": 8, "kernel": 3}],
    "stages": [{"block": {"type": "conv"}, "out": 16, "repeats": 1, "stride": 2}],
    "head": {"pool": "avg"},
    "train": {"lr": 0.05, "batch_size": 64, "flip": False},
}


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return path


def test_json_run(spec_file, capsys):
    code = main(
        [
            "train",
            str(spec_file),
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--json",
            "--device",
            "cpu",
        ]
    )
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert code == 0 and report["status"] == "completed" and report["epochs"] == 1
    for key in ("val_acc", "test_acc", "train_images_per_s", "seconds"):
        assert isinstance(report[key], float)
    assert report["settings"]["lr"] == 0.05 and "epoch 1/1" in err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--epochs", "0"], "--epochs '0': expected an integer >= 1"),
        (["--epochs", "1", "--lr", "-1"], "--lr '-1'"),
        (["--epochs", "1", "--optimizer", "lbfgs"], "train.optimizer='lbfgs'"),
        (["--epochs", "1", "--dataset", "nowhere-9"], "nowhere-9: unknown data set"),
    ],
)
def test_bad_input_exits_2(spec_file, capsys, extra, message):
    argv = ["train", str(spec_file), "--dataset", "digits", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_missing_spec_file(tmp_path, capsys):
    assert main(["train", str(tmp_path / "none.yaml"), "--dataset", "digits", "--epochs", "1"]) == 2
    assert "no such file" in capsys.readouterr().err
