"""Files written before the versioned formats (0.1) are still read: ``search.json`` without
a version, retrain checkpoints whose payload says ``format: nas-checkpoint``, studies whose
trials say ``duplicate``. Each file is written here in the old form, as 0.1 wrote it."""

from __future__ import annotations

import json

import optuna
import pytest
from test_export_support import make_checkpoint

from nas.core.config import SEARCH_STATE_VERSION, load_saved
from nas.core.errors import UsageError
from nas.export import export_checkpoint, read_checkpoint
from nas.study.records import trial_records
from workers import load_checkpoint, save_checkpoint

OLD_SEARCH_JSON = {  # what 0.1 wrote: no "version"
    "config": {"budget": "3m", "dataset": "digits", "epochs": 12, "seed": 0},
    "spent": 42.5,
    "status": "finished",
    "updated": 1_700_000_000.0,
}


def test_unversioned_search_state_is_version_0(tmp_path):
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "search.json").write_text(json.dumps(OLD_SEARCH_JSON))
    saved = load_saved(tmp_path, "search")
    assert saved["spent"] == 42.5 and saved["config"]["budget"] == "3m"


def test_newer_or_damaged_search_state_is_one_line(tmp_path):
    (tmp_path / "search").mkdir()
    path = tmp_path / "search" / "search.json"
    path.write_text(json.dumps({**OLD_SEARCH_JSON, "version": SEARCH_STATE_VERSION + 1}))
    with pytest.raises(UsageError, match="search state version") as err:
        load_saved(tmp_path, "search")
    assert "\n" not in str(err.value)
    path.write_text("{not json")
    with pytest.raises(UsageError, match="damaged search state"):
        load_saved(tmp_path, "search")


def test_legacy_retrain_checkpoint_reads_and_exports(tmp_path):
    new = make_checkpoint(tmp_path / "new.pt")
    payload = load_checkpoint(new)
    assert payload["kind"] == "retrain"
    legacy = {k: v for k, v in payload.items() if k != "kind"} | {"format": "nas-checkpoint"}
    save_checkpoint(tmp_path / "old.pt", legacy)
    assert read_checkpoint(tmp_path / "old.pt")["spec"] == payload["spec"]
    res = export_checkpoint(tmp_path / "old.pt", "onnx,torchscript", tmp_path / "out")
    assert set(res.files) == {"onnx", "torchscript"}


def test_foreign_payload_is_refused(tmp_path):
    save_checkpoint(tmp_path / "x.pt", {"weights": [1, 2, 3]})
    with pytest.raises(UsageError, match="not a nas retrain checkpoint"):
        read_checkpoint(tmp_path / "x.pt")


def test_old_duplicate_status_reads_as_reused():
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.set_user_attr("status", "duplicate")  # 0.1's word for reused
    study.tell(trial, 0.9)
    (record,) = trial_records(study)
    assert record.status == "reused"
