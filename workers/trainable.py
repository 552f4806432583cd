"""The Ray Tune function trainable: one trial = one architecture trained and reported per epoch.

It reads only its ``config`` (see docs/INTERFACES.md): the spec, the training settings, a
reference to the dataset and the fidelity (``max_epochs``). The dataset is loaded once per
worker process (Ray reuses the actor across trials) and kept on the device. A checkpoint
goes with every epoch's report, so a trial that Ray retries after a worker failure resumes
at its last epoch instead of starting again.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch

from workers.augment import scaled_size
from workers.checkpoint import load_checkpoint, save_checkpoint
from workers.data import get_dataset
from workers.engine import train
from workers.latency import measure_latency
from workers.settings import TrainSettings

_STATE_FILE = "trial_state.pt"


def _device() -> str:
    return "cuda" if torch.cuda.is_available() and torch.cuda.device_count() > 0 else "cpu"


def train_trial(config: dict[str, Any]) -> None:
    """Train ``config["spec"]`` and report every epoch to Ray Tune (with a checkpoint)."""
    from ray import tune  # imported here so the engine stays importable without Ray

    threads = int(config.get("threads") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    device = _device()
    ds_ref = config["dataset"]
    data = get_dataset(
        ds_ref["name"],
        ds_ref.get("data_dir"),
        val_fraction=ds_ref.get("val_fraction", 0.1),
        seed=ds_ref.get("seed", 0),
        device=device,
    )
    spec = config["spec"]
    cost = config.get("cost") or {}
    static = {"params": int(cost.get("params", 0)), "macs": int(cost.get("macs", 0))}
    max_epochs = int(config["max_epochs"])

    resume_state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as ckpt_dir:
            resume_state = load_checkpoint(os.path.join(ckpt_dir, _STATE_FILE))

    final: dict[str, Any] = {}

    def report(metrics: dict[str, Any], state: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            save_checkpoint(os.path.join(tmp, _STATE_FILE), state)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    def on_epoch(metrics: Any, state: dict[str, Any]) -> bool:
        row = {
            "epoch": metrics.epoch,
            "train_loss": metrics.train_loss,
            "val_loss": metrics.val_loss,
            "val_acc": metrics.val_acc,
            "images_per_s": metrics.images_per_s,
            "status": "running",
            **static,
        }
        if metrics.epoch >= max_epochs:
            # The last epoch is reported after training, with the measured latency.
            final.update(row=row, state=state)
        else:
            report(row, state)
        return False

    result = train(
        spec,
        data,
        TrainSettings.from_dict(config["train"]),
        epochs=max_epochs,
        device=device,
        seed=int(config.get("seed", 0)),
        on_epoch=on_epoch,
        resume_state=resume_state,
    )
    if result.status == "ok" and final:
        row = {**final["row"], "status": "completed"}
        resolution = float((spec.get("scaling") or {}).get("resolution", 1.0))
        shape = (data.channels, *scaled_size(tuple(data.size), resolution))
        row.update(measure_latency(result.model, shape, device, batch_sizes=(1, 64)))
        report(row, final["state"])
    elif result.status != "ok":
        # One final report carries the failure; the trial ends, the search goes on.
        tune.report(
            {
                "epoch": result.epochs,
                "val_acc": 0.0 if result.val_acc != result.val_acc else float(result.val_acc),
                "status": result.status,
                "reason": result.reason or result.status,
                **static,
            }
        )
