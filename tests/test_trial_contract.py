"""The trial contract (workers/trial.py) is what docs/INTERFACES.md says, and it survives
Ray's dicts both ways."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workers.trial import (
    VAL_ACC,
    DatasetRef,
    TrialConfig,
    TrialReport,
    config_keys,
    report_keys,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "INTERFACES.md"


def _documented(heading: str) -> list[str]:
    text = DOC.read_text()
    section = text[text.index(heading) :]
    section = section[: section.find("\n#", 1) if "\n#" in section[1:] else len(section)]
    return sorted(re.findall(r"^\| `(\w+)` \|", section, re.M))


def test_documented_config_keys_are_the_codes():
    assert _documented("### Trial config") == config_keys()


def test_documented_report_keys_are_the_codes():
    assert _documented("### Trial report") == report_keys()


def test_config_round_trips_through_ray_dict():
    config = TrialConfig(
        spec={"version": 1},
        train={"lr": 0.1},
        max_samples=4096,
        report_at=(1024, 4096),
        dataset=DatasetRef("digits", None, 0.2, 3),
        params=12,
        macs=34,
        trial_number=7,
        warm_start="plain_cnn",
    )
    d = config.to_dict()
    assert sorted(d) == config_keys()
    assert d["cost"] == {"params": 12, "macs": 34} and d["report_at"] == [1024, 4096]
    assert TrialConfig.from_dict(d) == config


def test_unknown_config_key_is_named():
    with pytest.raises(ValueError, match="unknown keys \\['bogus'\\]"):
        TrialConfig.from_dict({"spec": {}, "train": {}, "max_samples": 1, "bogus": 1})


def test_report_keeps_what_ray_adds_apart():
    report = TrialReport(samples=1024, val_acc=0.5, status="running", lr=0.1)
    d = report.to_dict()
    assert d == {"samples": 1024, "val_acc": 0.5, "status": "running", "lr": 0.1}
    back = TrialReport.from_dict({**d, "training_iteration": 3, "time_this_iter_s": 0.2})
    assert back.extra == {"training_iteration": 3, "time_this_iter_s": 0.2}
    assert back.to_dict() == d and d[VAL_ACC] == 0.5


def test_events_with_a_typed_config_survive_the_mlflow_spool():
    """The spool keeps events as JSON lines while the MLflow server is away; a trial's
    config goes as Ray's dict and comes back typed."""
    from nas.study import events
    from nas.tracking.spool import decode, encode
    from workers.status import TrialStatus

    config = TrialConfig(spec={"stages": []}, train={"lr": 0.1}, max_samples=512,
                         report_at=(256, 512), dataset=DatasetRef("digits"), params=7)  # fmt: skip
    for event in (
        events.TrialStarted(3, config, "ray3"),
        events.TrialReused(4, config, 3, TrialStatus.REUSED, [0.9], "same"),
        events.TrialRejected(5, config, "too big"),
        events.EpochReported(3, {"samples": 256, "val_acc": 0.5}),
        events.TrialEnded(3, TrialStatus.PRUNED, "by ASHA"),
    ):
        assert decode(encode(event)) == event


def test_workers_api_and_submodules_load_on_first_use():
    """``import workers`` loads no torch for the trial contract, yet ``workers.train`` and
    ``workers.engine.loop`` are there when asked for (``nas train`` asks for the latter)."""
    import workers

    assert callable(workers.train) and callable(workers.engine.loop.default_device)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        workers.nothing  # noqa: B018


def test_the_key_read_on_every_result_is_a_config_key():
    from workers.trial import TRIAL_NUMBER

    assert TRIAL_NUMBER in config_keys()


class _ReportsOnly:
    """What a trial may call of Ray Tune when it trains nothing: ``report``."""

    def __init__(self) -> None:
        self.reports: list[dict] = []

    def report(self, metrics: dict, checkpoint=None) -> None:
        assert checkpoint is None
        self.reports.append(metrics)

    def get_checkpoint(self):
        raise AssertionError("a rejected trial looks for no checkpoint")


def test_a_network_over_the_latency_limit_is_measured_rejected_and_not_trained():
    from test_export_support import spec_2d

    import workers
    from nas.study.status_table import classify
    from workers.status import TrialStatus
    from workers.trainable import _train_trial

    data = workers.get_dataset("digits")
    spec = spec_2d()
    spec["input"] = {"dims": 2, "channels": 1, "size": [8, 8]}
    config = TrialConfig(spec=spec, train={"batch_size": 32}, max_samples=512,
                         report_at=(512,), max_latency_ms=1e-6)  # fmt: skip
    tune = _ReportsOnly()
    _train_trial(tune, config.to_dict(), data)
    (only,) = tune.reports
    assert only["status"] == "rejected" and only["samples"] == 0
    assert only["latency_ms_b1"] > 1e-6 and "over --max-latency-ms 1e-06" in only["reason"]
    assert classify(only, False, None) == (TrialStatus.REJECTED, only["reason"])
