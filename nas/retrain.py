"""Retrain one architecture of a search from scratch, on training + validation data.

The chosen trial's spec and training settings come from the Optuna study (its user
attributes); the dataset reference from the search's ``search.json``. The model trains for a
longer schedule than the search's fidelity, is evaluated once on the test split, and is saved
as a checkpoint that carries its spec, normalisation and metrics, so it rebuilds and exports
anywhere. An MLflow run (``nas.role = retrain``) links back to the trial's run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from nas.config import default_storage, default_tracking_uri, load_saved
from nas.errors import UsageError
from nas.results import TrialRecord, best_record, load_study, trial_records
from nas.tracking import PARAM_LIMIT, flatten

CHECKPOINT_FORMAT = "nas-checkpoint"


@dataclass
class RetrainResult:
    """What ``nas retrain --json`` prints."""

    trial: int
    test_acc: float
    epochs: int
    seconds: float
    checkpoint: str
    run_id: str
    params: int
    macs: int
    latency_ms_b1: float | None
    train_images_per_s: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def choose_trial(records: list[TrialRecord], trial: int | None) -> TrialRecord:
    """``--trial K`` (any trial with a spec) or the accuracy-best completed one."""
    if trial is None:
        best = best_record(records)
        if best is None:
            raise UsageError("--best: the search has no completed trial yet (see nas leaderboard)")
        return best
    for r in records:
        if r.trial == trial:
            if not r.spec:
                raise UsageError(
                    f"--trial {trial}: that trial has no architecture recorded (status {r.status})"
                )
            return r
    known = ", ".join(str(r.trial) for r in records[:10])
    raise UsageError(
        f"--trial {trial}: no such trial (trials: {known}{', ...' if len(records) > 10 else ''})"
    )


def retrain(
    workdir: Path,
    name: str,
    *,
    trial: int | None = None,
    epochs: int | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    seed: int | None = None,
    progress: Any = None,
) -> RetrainResult:
    """Retrain trial ``trial`` (default: the best) of search ``name``; see module doc."""
    import torch

    import search_spaces
    import workers

    saved = load_saved(workdir, name)
    if saved is None:
        raise UsageError(f"--name {name!r}: no search of that name in {str(workdir)!r}")
    cfg = saved["config"]
    study = load_study(storage or cfg.get("storage") or default_storage(workdir), name)
    record = choose_trial(trial_records(study), trial)
    spec, settings = record.spec, record.train
    epochs = epochs or max(2 * int(cfg.get("epochs", 12)), 20)
    if epochs < 1:
        raise UsageError(f"--epochs {epochs}: expected an integer >= 1")
    seed = cfg.get("seed", 0) if seed is None else seed

    data = workers.load_dataset(cfg["dataset"], cfg.get("data_dir"), val_fraction=0.0, seed=seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def on_epoch(m: Any, state: dict[str, Any]) -> bool:
        if progress is not None:
            progress(
                f"retrain trial {record.trial}: epoch {m.epoch}/{epochs} loss {m.train_loss:.4f} "
                f"{m.images_per_s:,.0f} img/s"
            )
        return False

    t0 = time.monotonic()
    result = workers.train(
        spec,
        data,
        settings,
        epochs=epochs,
        device=device,
        seed=seed,
        on_epoch=on_epoch,
        use_test=True,
    )
    if result.status != "ok":
        raise UsageError(
            f"--trial {record.trial}: retraining ended as {result.status}: {result.reason}"
        )
    cost = search_spaces.count(spec, data.num_classes)
    resolution = float((spec.get("scaling") or {}).get("resolution", 1.0))
    from workers.augment import scaled_size

    latency = workers.measure_latency(
        result.model, (data.channels, *scaled_size(tuple(data.size), resolution)), device
    )

    client = MlflowClient(tracking_uri or cfg.get("tracking_uri") or default_tracking_uri(workdir))
    exp = client.get_experiment_by_name(name)
    exp_id = (
        exp.experiment_id
        if exp
        else client.create_experiment(
            name, artifact_location=(workdir / "mlartifacts").resolve().as_uri()
        )
    )
    trial_run = client.search_runs(
        [exp_id],
        filter_string=f"tags.`nas.role` = 'trial' and tags.`nas.trial` = '{record.trial}'",
        max_results=1,
    )
    tags = {
        "nas.role": "retrain",
        "nas.study": name,
        "nas.trial": str(record.trial),
        "nas.spec_id": record.spec_id or search_spaces.spec_id(spec),
    }
    if trial_run:
        tags["nas.trial_run_id"] = trial_run[0].info.run_id
    run = client.create_run(exp_id, run_name=f"retrain-trial-{record.trial:04d}", tags=tags)
    run_id = run.info.run_id

    out_dir = workdir / name / "retrain" / f"trial-{record.trial:04d}-{run_id[:8]}"
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "model.pt"
    metrics = {
        "test_acc": float(result.test_acc),
        "train_loss": result.history[-1].train_loss,
        "train_images_per_s": float(result.train_images_per_s),
        "seconds": float(result.seconds),
    }
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "spec": spec,
        "num_classes": data.num_classes,
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
        "train": settings,
        "dataset": {"name": cfg["dataset"], "data_dir": cfg.get("data_dir")},
        "input": {"dims": data.dims, "channels": data.channels, "size": list(data.size)},
        "normalize": {"mean": data.mean.flatten().tolist(), "std": data.std.flatten().tolist()},
        "class_names": list(data.classes) or None,
        "metrics": metrics,
        "cost": {"params": int(cost.params), "macs": int(cost.macs), **latency},
        "run_id": run_id,
        "trial": record.trial,
        "study": name,
        "epochs": epochs,
        "seed": seed,
    }
    workers.save_checkpoint(checkpoint, payload)

    values = {
        **flatten("train", settings, {}),
        "epochs": str(epochs),
        "seed": str(seed),
        "spec_id": tags["nas.spec_id"],
        "params": str(cost.params),
        "macs": str(cost.macs),
    }
    now = int(time.time() * 1000)
    history = [
        Metric(k, float(getattr(m, k)), now, m.epoch)
        for m in result.history
        for k in ("train_loss", "images_per_s")
    ]
    final = [Metric(k, float(v), now, epochs) for k, v in {**metrics, **latency}.items()]
    client.log_batch(run_id, params=[Param(k, v[:PARAM_LIMIT]) for k, v in values.items()][:100])
    for i in range(0, len(history), 900):
        client.log_batch(run_id, metrics=history[i : i + 900])
    client.log_batch(run_id, metrics=final)
    client.set_tag(run_id, "nas.checkpoint", str(checkpoint.resolve()))
    client.log_dict(run_id, spec, "spec.json")
    client.set_terminated(run_id, "FINISHED")
    return RetrainResult(
        trial=record.trial,
        test_acc=float(result.test_acc),
        epochs=epochs,
        seconds=time.monotonic() - t0,
        checkpoint=str(checkpoint.resolve()),
        run_id=run_id,
        params=int(cost.params),
        macs=int(cost.macs),
        latency_ms_b1=latency.get("latency_ms_b1"),
        train_images_per_s=float(result.train_images_per_s),
    )
