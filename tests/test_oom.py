"""Out of memory, injected as ``torch.OutOfMemoryError`` where a real one is raised (the
training step, moving the data to the device): one retry at half the batch size and
learning rate, recorded; a second one ends the run ``oom``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import workers
from workers.data.dataset import Dataset
from workers.engine import loop, retry_smaller_on_oom, train, train_folds
from workers.settings import TrainSettings
from workers.status import TrialStatus

SETTINGS = TrainSettings.from_dict({"batch_size": 64, "lr": 0.05, "augment": 0.0, "flip": False})


@pytest.fixture(scope="module")
def digits():
    return workers.get_dataset("digits")


def tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10))


def _inject_in_step(monkeypatch, times: int) -> list[int]:
    """The first ``times`` training steps raise OOM; returns the batch sizes of every step."""
    batches: list[int] = []
    real = loop._Run._train_step

    def step(self, xb, yb):
        batches.append(int(xb.shape[0]))
        if len(batches) <= times:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, xb, yb)

    monkeypatch.setattr(loop._Run, "_train_step", step)
    return batches


def test_one_oom_in_the_step_retries_at_half_the_batch(monkeypatch, digits, one_thread):
    batches = _inject_in_step(monkeypatch, times=1)
    result, note = retry_smaller_on_oom(
        train, SETTINGS, spec=tiny(), dataset=digits, epochs=1, device="cpu"
    )
    assert result.status == TrialStatus.COMPLETED
    assert batches[0] == 64 and set(batches[1:]) <= {32, len(digits.train_y) % 32}
    assert "out of memory at batch 64" in note and "batch 32, lr 0.025" in note


def test_a_second_oom_ends_the_run_oom(monkeypatch, digits, one_thread):
    _inject_in_step(monkeypatch, times=2)
    result, note = retry_smaller_on_oom(
        train, SETTINGS, spec=tiny(), dataset=digits, epochs=1, device="cpu"
    )
    assert result.status == TrialStatus.OOM and note


def test_oom_moving_the_data_is_handled_the_same_way(monkeypatch, digits, one_thread):
    calls = []
    real = Dataset.to

    def to(self, device):
        calls.append(device)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory while copying the data")
        return real(self, device)

    monkeypatch.setattr(Dataset, "to", to)
    spec_free = {"folds": 2, "samples": 256, "device": "cpu"}
    from test_export_support import spec_2d

    small = workers.get_dataset("digits")
    spec = spec_2d()
    spec["input"] = {"dims": 2, "channels": 1, "size": [8, 8]}
    result, note = retry_smaller_on_oom(
        train_folds, SETTINGS, spec=spec, dataset=small, **spec_free
    )
    assert result.status == TrialStatus.COMPLETED, result.reason
    assert "moving the data" in note


@pytest.mark.slow
def test_a_failing_trial_carries_its_traceback_and_log_tail_to_mlflow(tmp_path, ray_session):
    """A real Ray trial whose config the engine refuses with an error it does not turn into
    a status: the last report has the reason, traceback and worker log tail, and the
    tracker keeps them on the trial's run."""
    from ray import tune
    from test_export_support import spec_2d

    from nas.driver.ray_adapters import _diagnostics
    from nas.tracking.tracker import SearchTracker
    from workers.trainable import train_trial
    from workers.trial import TrialConfig

    spec = spec_2d()
    spec["input"] = {"dims": 2, "channels": 1, "size": [8, 8]}
    config = {
        "spec": spec,
        "train": SETTINGS.to_dict(),
        "max_samples": 512,
        "report_at": [0],  # the engine refuses it with a ValueError
        "trial_number": 0,
    }
    tuner = tune.Tuner(
        tune.with_parameters(train_trial, data=workers.get_dataset("digits")),
        param_space=config,
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0),
    )
    (result,) = list(tuner.fit())
    metrics = result.metrics
    assert metrics["status"] == TrialStatus.FAILED.value
    assert metrics["reason"].startswith("ValueError: report_at=[0]")
    assert "Traceback" in metrics["traceback"] and "_fidelity" in metrics["traceback"]
    assert isinstance(metrics["log_tail"], str)

    class Finished:  # what Ray's Trial offers the callback: its last result
        last_result = metrics

    tracker = SearchTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "diag")
    tracker.start_search_run({}, resume=False)
    run_id = tracker.trial_run(0, TrialConfig.from_dict(config))
    tracker.end_trial(0, TrialStatus.FAILED, metrics["reason"], _diagnostics(Finished, False))
    files = {a.path for a in tracker.client.list_artifacts(run_id)}
    assert {"traceback.txt", "worker_log_tail.txt"} <= files
    run = tracker.client.get_run(run_id)
    assert run.data.tags["nas.status"] == "failed"
    assert run.data.tags["nas.reason"].startswith("ValueError")
