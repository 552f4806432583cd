"""Retrain one architecture of a search from scratch, on training + validation data.

The chosen trial's spec and training settings come from the Optuna study (its user
attributes); the dataset reference from the search's ``search.json``. The model trains for a
longer schedule than the search's fidelity, is evaluated once on the test split, and is saved
as a checkpoint that carries its spec, normalisation and metrics, so it rebuilds and exports
anywhere. An MLflow run (``nas.role = retrain``) links back to the trial's run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import Metric

from nas import mlflow_store
from nas.config import default_storage, default_tracking_uri, load_saved, search_stores
from nas.errors import UsageError
from nas.results import TrialRecord, handover_record, load_study, trial_records
from nas.tracking import flatten, log_params
from workers.checkpoint import RETRAIN_KIND, RETRAIN_VERSION


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


def choose_trial(
    records: list[TrialRecord], trial: int | None, progress: Any = None
) -> TrialRecord:
    """``--trial K`` (any trial with a spec) or the accuracy-best completed one (when none
    completed, the best trial that reported, said through ``progress``)."""
    if trial is None:
        best, note = handover_record(records)
        if best is None:
            raise UsageError(
                "--best: no trial of the search has reported yet (see nas leaderboard)"
            )
        if note and progress is not None:
            progress(note)
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
    record = choose_trial(trial_records(study), trial, progress)
    spec, settings = record.spec, record.train
    if epochs is not None and epochs < 1:
        raise UsageError(f"--epochs {epochs}: expected an integer >= 1")
    seed = cfg.get("seed", 0) if seed is None else seed

    data = workers.load_dataset(cfg["dataset"], cfg.get("data_dir"), val_fraction=0.0, seed=seed)
    epochs = epochs or default_epochs(saved, len(data.train_y), int(settings["batch_size"]))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.monotonic()
    result = _train(record, data, epochs, seed, device, progress)
    cost = search_spaces.count(spec, data.num_classes)
    latency = workers.measure_latency(result.model, _input_shape(spec, data), device)

    uri = tracking_uri or search_stores(workdir, name)[1] or default_tracking_uri(workdir)
    client = mlflow_store.client(uri)
    run_id, spec_id = _open_run(client, mlflow_store.experiment_id(client, name, uri), name, record)
    out_dir = workdir / name / "retrain" / f"trial-{record.trial:04d}-{run_id[:8]}"
    checkpoint = (out_dir / "model.pt").resolve()
    metrics = {
        "test_acc": float(result.test_acc),
        "train_loss": result.history[-1].train_loss,
        "train_images_per_s": float(result.train_images_per_s),
        "seconds": float(result.seconds),
    }
    workers.save_checkpoint(
        checkpoint,
        {
            "kind": RETRAIN_KIND,
            "version": RETRAIN_VERSION,
            "spec": spec,
            "num_classes": data.num_classes,
            "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
            "train": settings,
            "dataset": {"name": cfg["dataset"], "data_dir": cfg.get("data_dir")},
            "input": {"dims": data.dims, "channels": data.channels, "size": list(data.size)},
            "normalize": {
                "mean": data.mean.flatten().tolist(),
                "std": data.std.flatten().tolist(),
            },
            "input_range": input_range(data),
            "class_names": list(data.classes) or None,
            "metrics": metrics,
            "cost": {"params": int(cost.params), "macs": int(cost.macs), **latency},
            "run_id": run_id,
            "trial": record.trial,
            "study": name,
            "epochs": epochs,
            "seed": seed,
        },
    )
    params = {
        **flatten("train", settings, {}),
        "epochs": str(epochs),
        "seed": str(seed),
        "spec_id": spec_id,
        "params": str(cost.params),
        "macs": str(cost.macs),
    }
    _log_run(client, run_id, result, params, {**metrics, **latency}, epochs)
    client.set_tag(run_id, "nas.checkpoint", str(checkpoint))
    client.log_dict(run_id, spec, "spec.json")
    client.set_terminated(run_id, "FINISHED")
    return RetrainResult(
        trial=record.trial,
        test_acc=float(result.test_acc),
        epochs=epochs,
        seconds=time.monotonic() - t0,
        checkpoint=str(checkpoint),
        run_id=run_id,
        params=int(cost.params),
        macs=int(cost.macs),
        latency_ms_b1=latency.get("latency_ms_b1"),
        train_images_per_s=float(result.train_images_per_s),
    )


#: A retrain takes at least this many optimizer steps: on a few dozen samples an epoch is
#: one or two steps, and twice the search's epochs would train next to nothing.
MIN_RETRAIN_STEPS = 500


def input_range(data: Any) -> list[float]:
    """[min, max] of the training + validation inputs: ``nas predict`` refuses inputs on
    another scale (raw 0..16 digits for a model trained on 0..255)."""
    lo = min(float(data.train_x.min()), float(data.val_x.min()) if len(data.val_x) else 1e30)
    hi = max(float(data.train_x.max()), float(data.val_x.max()) if len(data.val_x) else -1e30)
    return [lo, hi]


def default_epochs(saved: dict[str, Any], train_size: int, batch_size: int) -> int:
    """The retrain's length: twice the search's full fidelity in epochs, at least 20 epochs
    and at least :data:`MIN_RETRAIN_STEPS` optimizer steps (batches of ``batch_size``)."""
    steps_per_epoch = max(1, train_size // max(1, min(batch_size, train_size)))
    by_steps = math.ceil(MIN_RETRAIN_STEPS / steps_per_epoch)
    return max(math.ceil(2 * _search_epochs(saved)), 20, by_steps)


def _search_epochs(saved: dict[str, Any]) -> float:
    """The full fidelity of the search, in epochs: ``--epochs`` or the plan's."""
    cfg, plan = saved["config"], saved.get("plan") or {}
    if cfg.get("epochs"):
        return float(cfg["epochs"])
    if plan.get("max_samples") and plan.get("train_size"):
        return plan["max_samples"] / plan["train_size"]
    return 12.0


def _train(
    record: TrialRecord, data: Any, epochs: int, seed: int, device: str, progress: Any
) -> Any:
    """Train the trial's spec with its settings on all of ``data``'s training split."""
    import workers

    def on_epoch(m: Any, state: dict[str, Any]) -> bool:
        if progress is not None:
            progress(
                f"retrain trial {record.trial}: epoch {m.epoch}/{epochs} loss {m.train_loss:.4f} "
                f"{m.images_per_s:,.0f} img/s"
            )
        return False

    result = workers.train(
        record.spec,
        data,
        record.train,
        epochs=epochs,
        device=device,
        seed=seed,
        on_epoch=on_epoch,
        use_test=True,
    )
    if not result.ok:
        raise UsageError(
            f"--trial {record.trial}: retraining ended as {result.status}: {result.reason}"
        )
    return result


def _input_shape(spec: dict[str, Any], data: Any) -> tuple[int, ...]:
    """C, *size the network sees: the data's size after the spec's resolution scaling."""
    from search_spaces.scaling import scaled_size

    resolution = float((spec.get("scaling") or {}).get("resolution", 1.0))
    return (data.channels, *scaled_size(list(data.size), resolution))


def _open_run(client: Any, exp_id: str, name: str, record: TrialRecord) -> tuple[str, str]:
    """(run id, spec id) of a new retrain run, linked to its trial's run when there is one."""
    import search_spaces

    trial_run = client.search_runs(
        [exp_id],
        filter_string=f"tags.`nas.role` = 'trial' and tags.`nas.trial` = '{record.trial}'",
        max_results=1,
    )
    spec_id = record.spec_id or search_spaces.spec_id(record.spec)
    tags = {"nas.role": "retrain", "nas.study": name, "nas.trial": str(record.trial),
            "nas.spec_id": spec_id}  # fmt: skip
    if trial_run:
        tags["nas.trial_run_id"] = trial_run[0].info.run_id
    run = client.create_run(exp_id, run_name=f"retrain-trial-{record.trial:04d}", tags=tags)
    return run.info.run_id, spec_id


def _log_run(
    client: Any,
    run_id: str,
    result: Any,
    params: dict[str, str],
    final: dict[str, float],
    epochs: int,
) -> None:
    """Params, the per-epoch curves and the final metrics of the retrain run."""
    now = int(time.time() * 1000)
    history = [
        Metric(k, float(getattr(m, k)), now, m.epoch)
        for m in result.history
        for k in ("train_loss", "images_per_s")
    ]
    log_params(client, run_id, params)
    for i in range(0, len(history), 900):  # log_batch takes at most 1000 metrics a call
        client.log_batch(run_id, metrics=history[i : i + 900])
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, epochs) for k, v in final.items()])
