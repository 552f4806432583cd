"""Secrets stay secret and untrusted files run nothing (issue #26), without servers: URLs are
recorded masked and asked for again, a CIFAR batch or a searcher state built to run code
when unpickled is refused and its payload never runs, Ray's pickle of the searcher holds
plain data only."""

from __future__ import annotations

import argparse
import io
import logging
import os
import pickle
import pickletools
from pathlib import Path

import numpy as np
import optuna
import pytest
from test_data_generated import write_cifar

from nas.cli import main
from nas.core import credentials
from nas.core.budget import parse_budget
from nas.core.config import SearchConfig, save_state, search_storage, search_tracking_uri
from nas.core.errors import UsageError
from nas.driver.ray_adapters import activate
from nas.driver.searcher import NasSearcher
from nas.study.events import SearchState
from workers.data import load_dataset
from workers.data.dataset import DataError
from workers.data.plain_pickle import UnsafePickleError, loads_plain

PASSWORD = "pa55-w0rd-Zq"
PG = f"postgresql+psycopg://alice:{PASSWORD}@db.internal:5432/nas"
MASKED = "postgresql+psycopg://alice:***@db.internal:5432/nas"


class Payload:
    """Unpickling this calls ``os.mkdir(marker)``: the proof that a pickle ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_urls_are_masked_and_plain_ones_kept():
    assert credentials.mask_url(PG) == MASKED
    assert credentials.password_of(PG) == PASSWORD
    assert credentials.mask_url("http://bob:x%40y@mlflow:5000/") == "http://bob:***@mlflow:5000/"
    assert credentials.password_of("http://bob:x%40y@mlflow:5000/") == "x@y"
    for plain in ("sqlite:////tmp/optuna.db", "http://mlflow:5000", "postgresql://u@h/db", None):
        assert credentials.mask_url(plain) == plain and not credentials.is_masked(plain)
    assert credentials.without_userinfo("http://bob:pw@mlflow:5000/x") == "http://mlflow:5000/x"


def test_a_masked_url_needs_its_password_again_from_the_flag_or_the_environment():
    assert credentials.unmask(MASKED, PG, "--storage", "NAS_STORAGE") == PG
    assert credentials.unmask("sqlite:////w/optuna.db", None, "--storage", "NAS_STORAGE") == (
        "sqlite:////w/optuna.db"
    )
    with pytest.raises(UsageError) as err:
        credentials.unmask(MASKED, None, "--storage", "NAS_STORAGE")
    line = str(err.value)
    assert "\n" not in line and MASKED in line and "$NAS_STORAGE" in line and PASSWORD not in line


def test_redact_removes_known_passwords_from_text_and_log_records(monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "mlflow-Secret-9")
    credentials.register(PG)
    text = f"connect {PG} failed; token mlflow-Secret-9; encoded pa55-w0rd-Zq"
    assert PASSWORD not in credentials.redact(text)
    assert "mlflow-Secret-9" not in credentials.redact(text)
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "db %s down", (PG,), None)
    credentials.RedactingFilter().filter(record)
    assert PASSWORD not in record.getMessage() and MASKED in record.getMessage()


def _cfg(tmp_path: Path) -> SearchConfig:
    return SearchConfig(
        budget=parse_budget("2trials"),
        dataset="digits",
        data_dir=None,
        space="image",
        workdir=tmp_path,
        storage=PG,
        tracking_uri=f"http://alice:{PASSWORD}@mlflow:5000",
    )


def test_search_json_and_the_config_repr_carry_no_password(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    assert PASSWORD not in repr(cfg)
    assert cfg.to_json()["storage"] == MASKED
    assert cfg.to_json()["tracking_uri"] == "http://alice:***@mlflow:5000"
    save_state(cfg, 0.0, "running")
    text = (tmp_path / "search" / "search.json").read_text()
    assert PASSWORD not in text and MASKED in text

    monkeypatch.delenv("NAS_STORAGE", raising=False)
    with pytest.raises(UsageError, match=r"--storage: the search used .*\*\*\*"):
        search_storage(tmp_path, "search")
    monkeypatch.setenv("NAS_STORAGE", PG)
    assert search_storage(tmp_path, "search") == PG
    assert search_storage(tmp_path, "search", given="sqlite:////x.db") == "sqlite:////x.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", cfg.tracking_uri)
    assert search_tracking_uri(tmp_path, "search") == cfg.tracking_uri


def test_resume_without_the_password_is_one_line_naming_where_to_give_it(
    tmp_path, monkeypatch, capsys
):
    save_state(_cfg(tmp_path), 0.0, "finished")
    monkeypatch.delenv("NAS_STORAGE", raising=False)
    code = main(["search", "--resume", "--workdir", str(tmp_path)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert MASKED in err[0] and "--storage" in err[0] and PASSWORD not in err[0]


def test_a_cifar_batch_built_to_run_code_is_refused_and_never_runs(tmp_path):
    folder = write_cifar(tmp_path / "cifar")
    marker = tmp_path / "ran"
    batch = {b"data": np.zeros((20, 3072), np.uint8), b"labels": [0] * 20, b"x": Payload(marker)}
    (folder / "data_batch_2").write_bytes(pickle.dumps(batch))
    with pytest.raises(DataError) as err:
        load_dataset(folder)
    line = str(err.value)
    assert "data_batch_2" in line and "refused" in line and "os" in line and "\n" not in line
    assert not marker.exists()


def test_plain_pickles_load_and_everything_else_is_refused(tmp_path):
    plain = {b"a": [1, 2.5, "s", b"b", None, True], "arr": np.arange(6).reshape(2, 3),
             "scalar": np.int64(3), "t": (1, 2)}  # fmt: skip
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        back = loads_plain(pickle.dumps(plain, protocol=protocol))
        assert back["arr"].tolist() == [[0, 1, 2], [3, 4, 5]] and back[b"a"][2] == "s"
    for hostile in (Payload(tmp_path / "ran"), argparse.Namespace(a=1), eval):
        with pytest.raises(UnsafePickleError):
            loads_plain(pickle.dumps(hostile))
    assert not (tmp_path / "ran").exists()


class _Space:
    def __call__(self, trial: optuna.Trial) -> dict:
        width = trial.suggest_categorical("width", [8, 16])
        return {"config_key": f"w{width}", "rejected": None, "trial_number": trial.number,
                "spec": {"width": width}, "train": {}}  # fmt: skip


@pytest.fixture
def searcher(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(study_name="sec", storage=storage, direction="maximize")
    state = SearchState(parse_budget("2trials"), 1.0)
    state.study, state.storage, state.define_by_run = study, storage, _Space()
    activate("sec", state)
    yield NasSearcher(_Space(), study=study, metrics=["val_acc"], storage=storage)
    activate("sec", None)


def test_the_searcher_state_is_versioned_json_and_a_pickle_in_its_place_never_runs(
    tmp_path, searcher
):
    config = searcher.suggest("ray0")
    searcher.on_trial_result("ray0", {"samples": 10, "val_acc": 0.4, "status": "running"})
    path = tmp_path / NasSearcher.CKPT_FILE_TMPL.format("x")
    assert path.suffix == ".json"
    searcher.save(str(path))
    restored = pickle.loads(pickle.dumps(searcher))
    restored.restore(str(path))
    assert restored.trials["ray0"].number == config["trial_number"]
    assert restored.reported == {"ray0": 10}

    marker = tmp_path / "ran"
    path.write_bytes(pickle.dumps({"trials": Payload(marker)}))
    with pytest.raises(ValueError, match=str(path)):
        restored.restore(str(path))
    path.write_text('{"version": 99, "trials": {}, "reported": {}, "configs": {}}')
    with pytest.raises(ValueError, match="version 99"):
        restored.restore(str(path))
    assert not marker.exists()


def test_rays_pickle_of_the_searcher_holds_plain_data_and_no_store_url(searcher):
    searcher.suggest("ray0")
    blob = pickle.dumps(searcher)
    named = []

    class Recording(pickle.Unpickler):
        def find_class(self, module, name):
            named.append(f"{module}.{name}")
            return super().find_class(module, name)

    restored = Recording(io.BytesIO(blob)).load()
    assert named == ["nas.driver.searcher.NasSearcher"]  # no optuna, no storage, no sampler
    strings = {arg for _, arg, _ in pickletools.genops(blob) if isinstance(arg, str)}
    assert not any("sqlite" in s or "optuna" in s for s in strings), strings
    assert restored.study is searcher.study and set(restored.trials) == {"ray0"}
