"""Chaos, part 2, what needs no server: damaged data files, untrusted checkpoints, two
drivers on one SQLite study. Each is refused with one line naming the culprit, exit 2,
nothing written (docs/RELIABILITY.md)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from test_data_generated import write_idx

from nas.cli import main


def _one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def _ts(path: Path, rows: list[str]) -> None:
    header = ["@problemName x", "@timeStamps false", "@univariate true",
              "@classLabel true 1 2", "@data"]  # fmt: skip
    path.write_text("\n".join(header + rows) + "\n")


def _damaged(kind: str, root: Path) -> tuple[Path, Path]:
    """(dataset path to pass, the file the error must name)."""
    if kind == "truncated idx":
        folder = write_idx(root / "idx", truncate=True)
        return folder, folder / "train-images-idx3-ubyte.gz"
    if kind == "malformed ts line":
        folder = root / "series"
        folder.mkdir()
        good = [f"{','.join(str(v) for v in range(8))}:{1 + i % 2}" for i in range(10)]
        _ts(folder / "S_TRAIN.ts", good[:4] + ["1,2,3 no label here"] + good[4:])
        _ts(folder / "S_TEST.ts", good)
        return folder, folder / "S_TRAIN.ts"
    if kind == "non-image in an image folder":
        folder = root / "images"
        for label in ("cats", "dogs"):
            (folder / label).mkdir(parents=True)
            for i in range(3):
                from PIL import Image

                Image.fromarray(np.full((8, 8, 3), i * 40, np.uint8)).save(
                    folder / label / f"{i}.png"
                )
        bad = folder / "dogs" / "3.png"
        bad.write_bytes(b"this is not a picture")
        return folder, bad
    if kind == "empty npz":
        path = root / "empty.npz"
        np.savez(path)
        return path, path
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["truncated idx", "malformed ts line", "non-image in an image folder", "empty npz"]
)
def test_a_damaged_data_file_is_named_in_one_line_and_nothing_is_written(kind, tmp_path, capsys):
    dataset, culprit = _damaged(kind, tmp_path)
    workdir = tmp_path / "work"
    code = main(["search", "--budget", "1trials", "--dataset", str(dataset),
                 "--workdir", str(workdir)])  # fmt: skip
    line = _one_error_line(capsys)
    assert code == 2
    assert str(culprit) in line, line
    assert not workdir.exists()


class _RunsCode:
    """Unpickling this calls ``Path.touch`` (any callable would do: this is the attack)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("what", ["checkpoint", "state_dict"])
def test_a_checkpoint_built_to_run_code_is_refused_and_runs_nothing(what, tmp_path, capsys):
    marker = tmp_path / "pwned"
    payload = {"format": "nas-checkpoint", "evil": _RunsCode(marker)}
    if what == "state_dict":
        payload = {"weight": torch.zeros(1), "evil": _RunsCode(marker)}
    path = tmp_path / f"{what}.pt"
    buffer = io.BytesIO()
    torch.save(payload, buffer, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    path.write_bytes(buffer.getvalue())
    code = main(["export", "--checkpoint", str(path), "--out", str(tmp_path / "out")])
    line = _one_error_line(capsys)
    assert code == 2 and str(path) in line
    assert not marker.exists(), "unpickling ran code"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_two_drivers_on_one_search_the_second_is_refused(tmp_path, capsys):
    from test_chaos import SEARCH_LINE, Search

    first = Search(tmp_path, "--budget", "60s")
    try:
        first.wait_line(SEARCH_LINE)  # its study exists, its lock is held
        code = main(["search", "--resume", "--workdir", str(tmp_path)])
        line = _one_error_line(capsys)
        assert code == 2
        assert "is running" in line and f"pid {first.proc.pid}" in line
    finally:
        first.kill()
