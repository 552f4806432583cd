"""Checkpoint files: round trip, atomic write, refusal of foreign / corrupt files."""

from __future__ import annotations

import pickle

import pytest
import torch

from workers import CheckpointError, load_checkpoint, save_checkpoint


def test_round_trip_and_no_leftovers(tmp_path):
    payload = {"epoch": 3, "model": {"w": torch.arange(4.0)}, "history": [{"val_acc": 0.5}]}
    path = save_checkpoint(tmp_path / "sub" / "c.pt", payload)
    out = load_checkpoint(path)
    assert out["epoch"] == 3 and torch.equal(out["model"]["w"], torch.arange(4.0))
    save_checkpoint(path, {"epoch": 4})  # overwrite in place
    assert load_checkpoint(path)["epoch"] == 4
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_corrupt_foreign_and_missing(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"epoch": 1})
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="unreadable checkpoint"):
        load_checkpoint(path)
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="foreign file"):
        load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(object()))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    assert issubclass(CheckpointError, ValueError)
