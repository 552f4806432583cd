"""The Ray Tune function trainable: one trial = one architecture trained and reported per epoch.

It reads its ``config`` (:class:`workers.trial.TrialConfig`, docs/INTERFACES.md): the spec, the training settings and the
fidelity: ``max_samples`` training samples, with a report after each of ``report_at``, and
``folds`` (k-fold evaluation on small data) -- the search's plan, :mod:`nas.driver.plan`. The
dataset comes from the driver through Ray's object store (``tune.with_parameters``), so a
worker node needs no copy of the data files; called without it, the trial loads the dataset
that ``config["dataset"]`` names (cached per worker process). A checkpoint
goes with every epoch's report, so a trial that Ray retries after a worker failure resumes
at its last epoch instead of starting again.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import traceback
from typing import Any

import torch

from search_spaces.scaling import scaled_size
from workers.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from workers.data import Dataset, get_dataset
from workers.engine import retry_smaller_on_oom, train, train_folds
from workers.engine.loop import build_model, is_oom, one_line
from workers.latency import measure_latency
from workers.memory import peak_mb, reset_peak
from workers.settings import TrainSettings
from workers.status import TrialStatus
from workers.trial import LATENCY_MS_B1, TrialConfig, TrialReport

_STATE_FILE = "trial_state.pt"


def _device() -> str:
    return "cuda" if torch.cuda.is_available() and torch.cuda.device_count() > 0 else "cpu"


def _load(config: TrialConfig, data: Dataset | None, device: str) -> Dataset:
    """The trial's data set on its device, with the trial's thread count."""
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    if data is not None:
        return data.to(device)
    ref = config.dataset
    if ref is None:
        raise ValueError("trial config: no data handed over and no dataset to load")
    return get_dataset(
        ref.name, ref.data_dir, val_fraction=ref.val_fraction, seed=ref.seed, device=device
    )


def _resume_state(tune: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(training state, note): the state of the checkpoint Ray restored the trial from, if
    any; a damaged one is refused (one line, here and on the trial's MLflow run) and the
    trial trains again from the start."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None, None
    try:
        with checkpoint.as_directory() as ckpt_dir:
            return load_checkpoint(os.path.join(ckpt_dir, _STATE_FILE)), None
    except (CheckpointError, OSError) as exc:
        note = f"checkpoint refused ({exc}); trained again from the start"
        print(f"nas: {note}", file=sys.stderr, flush=True)
        return None, note


def _row(metrics: Any, static: dict[str, Any], device: str) -> TrialReport:
    """What one report tells Ray (and through it Optuna and MLflow)."""
    row = TrialReport(
        samples=metrics.samples,
        val_acc=metrics.val_acc,
        status=TrialStatus.RUNNING.value,
        epoch=metrics.epoch,
        train_loss=metrics.train_loss,
        val_loss=metrics.val_loss,
        lr=metrics.lr,
        images_per_s=metrics.images_per_s,
        peak_memory_mb=peak_mb(device),
        **static,
    )
    if metrics.folds > 1:
        row.val_acc_std, row.folds = metrics.val_acc_std, metrics.folds
    return row


def train_trial(config: dict[str, Any], data: Dataset | None = None) -> None:
    """Train ``config["spec"]`` on ``data`` and report at every point of the plan to Ray Tune
    (with a checkpoint); every report carries the costs, the last one the status and,
    for a completed trial, the measured latency. With ``latency_first`` the latency is
    measured before training instead and every report carries it (it depends on the
    architecture, not its weights: a latency objective's rungs rank on it,
    :mod:`nas.driver.pareto_halving`).

    An error the engine does not turn into a status ends the trial ``failed`` with its
    reason, traceback and the tail of this worker's log in the last report (the driver puts
    them on the trial's MLflow run: on a cluster the worker's logs stay on its node). A
    worker that dies (killed, its node lost) reports nothing: Ray retries the trial."""
    from ray import tune  # imported here so the engine stays importable without Ray

    try:
        _train_trial(tune, config, data)
    except Exception as exc:  # noqa: BLE001 (every error becomes the trial's status)
        failed = TrialReport(
            samples=0,
            val_acc=0.0,
            status=TrialStatus.FAILED.value,
            reason=one_line(exc),
            traceback=traceback.format_exc()[-20000:],
            log_tail=_log_tail(),
        )
        tune.report(failed.to_dict())


def _train_trial(tune: Any, raw_config: dict[str, Any], data: Dataset | None) -> None:
    config = TrialConfig.from_dict(raw_config)
    device = _device()
    reset_peak(device)
    data = _load(config, data, device)
    spec = config.spec
    static = _costs(config, data, device)
    if _over_latency_limit(tune, config, static):
        return
    max_samples = config.max_samples
    final: dict[str, Any] = {}
    reported = [0]  # samples of the last report (an OOM retry passes them again)

    def report(metrics: TrialReport, state: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            save_checkpoint(os.path.join(tmp, _STATE_FILE), state)
            tune.report(metrics.to_dict(), checkpoint=tune.Checkpoint.from_directory(tmp))
        reported[0] = metrics.samples

    def on_epoch(metrics: Any, state: dict[str, Any]) -> bool:
        if metrics.samples >= max_samples:  # the last report goes after training
            final.update(row=_row(metrics, static, device), state=state)
        elif metrics.samples > reported[0]:
            report(_row(metrics, static, device), state)
        return False

    resume_state, note = _resume_state(tune)
    if note:
        static["note"] = note
    folds = config.folds
    fidelity: dict[str, Any] = {"samples": max_samples, "report_at": list(config.report_at) or None}
    if folds > 1:  # small data: the mean over k folds of training + validation
        run, fidelity["folds"] = train_folds, folds
    else:
        run = train
    result, oom_note = retry_smaller_on_oom(
        run,
        TrainSettings.from_dict(config.train),
        spec=spec,
        dataset=data,
        **fidelity,
        device=device,
        seed=config.seed,
        on_epoch=on_epoch,
        resume_state=resume_state,
    )
    if oom_note:
        static["note"] = oom_note
        if final:
            final["row"].note = oom_note
    if result.ok and final:
        report(_completed(final["row"], config, result.model, data, device), final["state"])
    elif not result.ok:
        # One final report carries the failure; the trial ends, the search goes on.
        ended = TrialReport(
            samples=result.samples,
            epoch=result.epochs,
            val_acc=0.0 if result.val_acc != result.val_acc else float(result.val_acc),
            status=result.status.value,
            reason=result.reason or result.status.value,
            **static,
        )
        tune.report(ended.to_dict())


def _completed(
    row: TrialReport, config: TrialConfig, model: Any, data: Dataset, device: str
) -> TrialReport:
    """The last report of a completed trial: its status, and its latency measured on the
    trained network unless it was measured before training (``latency_first``)."""
    row = dataclasses.replace(row, status=TrialStatus.COMPLETED.value)
    if config.measures_latency_first:
        return row
    return dataclasses.replace(row, **_latency(model, data, config.spec, device))


def _over_latency_limit(tune: Any, config: TrialConfig, static: dict[str, Any]) -> bool:
    """With ``max_latency_ms`` (``--max-latency-ms``), a network whose latency at batch 1,
    measured before training, is over it is reported ``rejected`` and not trained; True
    then. The latency is the worker's to measure, so this limit, unlike ``--max-params``,
    is applied on the worker."""
    latency = static.get(LATENCY_MS_B1)
    if config.max_latency_ms is None or latency is None or latency <= config.max_latency_ms:
        return False
    reason = (
        f"latency {latency:.3g} ms at batch 1 is over --max-latency-ms {config.max_latency_ms:g}"
    )
    ended = TrialReport(samples=0, val_acc=0.0, status=TrialStatus.REJECTED.value, reason=reason,
                        **static)  # fmt: skip
    tune.report(ended.to_dict())
    return True


def _costs(config: TrialConfig, data: Dataset, device: str) -> dict[str, Any]:
    """What every report carries of the trial's costs: params and MACs, and with
    ``latency_first`` the latency of the untrained network."""
    static: dict[str, Any] = {"params": config.params, "macs": config.macs}
    if config.measures_latency_first:
        model = build_model(config.spec, data.num_classes)[0].to(device)
        static.update(_latency(model, data, config.spec, device))
        del model
        reset_peak(device)  # the trial's peak memory is its training's
    return static


def _latency(model: Any, data: Dataset, spec: dict[str, Any], device: str) -> dict[str, Any]:
    """Latency at batch 1 and 64; out of memory at 64 measures batch 1 alone (noted)."""
    resolution = float((spec.get("scaling") or {}).get("resolution", 1.0))
    shape = (data.channels, *scaled_size(tuple(data.size), resolution))
    try:
        return measure_latency(model, shape, device, batch_sizes=(1, 64))
    except (RuntimeError, MemoryError) as exc:
        if not is_oom(exc):
            raise
        note = f"out of memory measuring latency at batch 64 ({type(exc).__name__}); batch 1 only"
        return {**measure_latency(model, shape, device, batch_sizes=(1,)), "note": note}


def _log_tail(limit: int = 4000) -> str:
    """The end of this worker's stderr log file (Ray redirects it to the node's session
    logs), or an empty string where it is not a file."""
    try:
        path = os.readlink("/proc/self/fd/2")
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - limit))
            return log.read().decode(errors="replace")
    except OSError:
        return ""
