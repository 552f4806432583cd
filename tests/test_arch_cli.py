"""``nas arch summary``: table, --json, and bad input exiting 2 with one line."""

from __future__ import annotations

import json

import pytest

from nas.cli import main
from search_spaces import count, dump_spec, list_zoo, load_zoo


def test_summary_of_a_zoo_name(capsys) -> None:
    assert main(["arch", "summary", "resnet18"]) == 0
    out = capsys.readouterr().out
    assert "stem.0.conv.0" in out and "params: 11,689,512" in out


@pytest.mark.parametrize("name", list_zoo())
def test_summary_of_every_zoo_entry(capsys, name: str) -> None:
    classes = 10 if name in ("lenet5", "nin") else 1000
    assert main(["arch", "summary", name, "--classes", str(classes), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == count(load_zoo(name), classes).params


def test_summary_json_of_a_file(tmp_path, capsys) -> None:
    path = dump_spec(load_zoo("lenet5"), tmp_path / "lenet.yaml")
    assert main(["arch", "summary", str(path), "--classes", "10", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == 61_706 and isinstance(data["macs"], int)
    assert data["input_shape"] == [1, 32, 32] and data["layers"]


def test_input_override(capsys) -> None:
    assert main(["arch", "summary", "lenet5", "--input", "1x36x36", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_shape"] == [1, 36, 36]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["resnet19"], "SPEC 'resnet19': expected a .json/.yaml spec file or a zoo name"),
        (["missing.yaml"], "SPEC 'missing.yaml': no such file"),
        (["lenet5", "--classes", "zero"], "--classes 'zero': expected an integer >= 1"),
        (["lenet5", "--input", "3x32x32"], "--input '3x32x32': expected 1x32x32"),
        (["lenet5", "--input", "1x4x4"], "--input '1x4x4': stages[0].block: output size"),
    ],
)
def test_bad_input_exits_2(argv, needle, capsys) -> None:
    assert main(["arch", "summary", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_invalid_spec_file_exits_2(tmp_path, capsys) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "input": {"dims": 2, "channels": 3, "size": 8},
                "stages": [{"block": {"type": "conv", "expansion": 2}, "out": 4}],
            }
        )
    )
    assert main(["arch", "summary", str(path)]) == 2
    assert "bad.json: stages[0].block.expansion: unknown key" in capsys.readouterr().err
