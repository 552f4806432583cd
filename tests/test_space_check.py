"""``nas space check``: samples build and run for every shipped space; exit codes 0 / 1 / 2."""

from __future__ import annotations

import json

import pytest

import search_spaces
from nas.cli import main
from search_spaces.space import list_spaces

SMALL = {1: ["--size", "32"], 2: ["--size", "8", "--channels", "1"], 3: ["--size", "8"]}


pytestmark = pytest.mark.usefixtures("one_thread")


def _check(capsys, *args):
    code = main(["space", "check", *args, "--json"])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else None)


@pytest.mark.parametrize("name", list_spaces())
def test_every_shipped_space_checks_ok(capsys, name):
    space = search_spaces.load_space(name)
    samples = "4" if space.limits["max_macs"] else "12"  # a limit costs a count() per sample
    code, report = _check(capsys, name, "--samples", samples, *SMALL[space.dims[0]])
    assert code == 0, report["failures"]
    assert report["sampled"] == report["ok"] == int(samples) and report["failures"] == []


@pytest.mark.parametrize("name", list_spaces())
def test_every_shipped_space_exports_and_verifies(capsys, name):
    """``--export``: each sample also goes to ONNX + TorchScript and matches PyTorch."""
    space = search_spaces.load_space(name)
    code, report = _check(capsys, name, "--samples", "10", "--export", *SMALL[space.dims[0]])
    assert code == 0, report["failures"]
    assert report["export"] is True and report["ok"] == 10


def test_other_dims_of_a_multi_dims_space(capsys):
    code, report = _check(capsys, "residual_dense", "--dims", "3", "--size", "4x8x8",
                          "--samples", "4")  # fmt: skip
    assert code == 0 and report["input"] == {"dims": 3, "channels": 1, "size": [4, 8, 8]}


def test_failures_are_reported_with_index_and_reason(capsys, monkeypatch):
    real = search_spaces.build
    calls = []

    def flaky(spec, num_classes):
        calls.append(spec)
        if len(calls) == 2:
            raise ValueError("stages[0].block: broken on purpose")
        return real(spec, num_classes)

    monkeypatch.setattr(search_spaces, "build", flaky)
    code, report = _check(capsys, "image", "--samples", "3", "--size", "8", "--channels", "1")
    assert code == 1
    assert report["ok"] == 2
    (failure,) = report["failures"]
    assert failure["index"] == 1
    assert failure["spec_id"] == search_spaces.spec_id(calls[1])
    assert "broken on purpose" in failure["reason"]


def test_same_seed_same_samples(capsys, monkeypatch):
    real = search_spaces.sample
    ids: list[str] = []

    def spy(*args, **kwargs):
        spec, train = real(*args, **kwargs)
        ids.append(search_spaces.spec_id(spec))
        return spec, train

    monkeypatch.setattr(search_spaces, "sample", spy)
    for _ in range(2):
        _check(capsys, "image", "--samples", "3", "--seed", "7", "--size", "8", "--channels", "1")
    assert ids[:3] == ids[3:] and len(set(ids)) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown space 'nope'"),
        (["image", "--samples", "zero"], "--samples 'zero': expected an integer >= 1"),
        (["image", "--dims", "3"], "--dims 3: space 'image' accepts dims 2"),
        (["image", "--size", "8x8x8"], "--size '8x8x8': expected 2 positive integer(s)"),
        (["image", "--channels", "0"], "--channels '0': expected an integer >= 1"),
    ],
)
def test_bad_input_exits_2(capsys, args, message):
    assert main(["space", "check", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_space_file_exits_2(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text("dims: [2]\nstages: {blocks: [{type: conv, kernel: three}]}\ntrain: {}\n")
    assert main(["space", "check", str(path)]) == 2
    assert (
        "mine.yaml: stages.blocks[0].kernel: expected a list of odd ints" in capsys.readouterr().err
    )


def test_plain_output(capsys):
    assert main(["space", "check", "volume_3d", "--samples", "2", "--size", "8"]) == 0
    assert "2/2 ok" in capsys.readouterr().out
