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

from nas.core.config import (
    default_storage,
    default_tracking_uri,
    load_saved,
    search_storage,
    search_tracking_uri,
)
from nas.core.errors import UsageError
from nas.core.progress import bar, task
from nas.study.records import TrialRecord, handover_record, load_study, trial_records
from nas.tracking import store as mlflow_store
from nas.tracking.tracker import flatten, log_params
from workers.checkpoint import RETRAIN_KIND, RETRAIN_VERSION
from workers.trial import LATENCY_MS_B1


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
    budget: str | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    seed: int | None = None,
    progress: Any = None,
    init_from: str | Path | None = None,
    freeze: str | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
) -> RetrainResult:
    """Retrain trial ``trial`` (default: the best) of search ``name``; see module doc.

    ``init_from`` (:mod:`nas.retrain.transfer`) starts from an earlier retrain's or export's weights
    where they match, ``freeze`` keeps some of them fixed; with ``dataset`` (and
    ``data_dir``) the checkpoint's own architecture is fine-tuned on that dataset instead, and
    ``name`` only names the results (no search needed). ``budget`` (a wall-clock duration)
    plans the epochs from the network's measured training speed instead
    (:func:`epochs_for_budget`)."""
    import torch

    import search_spaces
    import workers

    if epochs is not None and epochs < 1:
        raise UsageError(f"--epochs {epochs}: expected an integer >= 1")
    seconds = _wall_seconds(budget) if budget is not None else None
    source = _source(init_from, freeze, dataset)
    saved, record = _what_to_train(workdir, name, trial, storage, progress, source,
                                   dataset, data_dir)  # fmt: skip
    cfg = saved["config"]
    spec, settings = record.spec, record.train
    seed = cfg.get("seed", 0) if seed is None else seed

    with task(f"loading {cfg['dataset']}"):
        data = workers.load_dataset(
            cfg["dataset"], cfg.get("data_dir"), val_fraction=0.0, seed=seed
        )
    if seconds is not None:
        epochs = epochs_for_budget(seconds, spec, data, settings)
    epochs = epochs or default_epochs(saved, len(data.train_y), int(settings["batch_size"]))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = None if source is None else _initial_model(spec, data, source, freeze, seed, progress)
    t0 = time.monotonic()
    result = _train(record, data, epochs, seed, device, model)
    cost = search_spaces.count(spec, data.num_classes)
    latency = workers.measure_latency(result.model, _input_shape(spec, data), device)

    uri = search_tracking_uri(workdir, name, tracking_uri) or default_tracking_uri(workdir)
    client = mlflow_store.client(uri)
    exp_id = mlflow_store.experiment_id(client, name, uri)
    run_id, spec_id = _open_run(client, exp_id, name, record, source)
    out_dir = workdir / name / "retrain" / f"{_label(record)}-{run_id[:8]}"
    checkpoint = (out_dir / "model.pt").resolve()
    metrics = {
        "test_acc": float(result.test_acc),
        "train_loss": result.history[-1].train_loss,
        "train_images_per_s": float(result.train_images_per_s),
        "seconds": float(result.seconds),
    }
    trained = {"metrics": metrics, "cost": {"params": int(cost.params), "macs": int(cost.macs),
                                            **latency}, "epochs": epochs, "seed": seed}  # fmt: skip
    origin = {"run_id": run_id, "trial": record.trial if record.trial >= 0 else None,
              "init_from": str(source.path) if source is not None else None,
              "frozen": freeze, "study": name}  # fmt: skip
    workers.save_checkpoint(checkpoint, _payload(record, data, result, cfg, trained, origin))
    _record(client, run_id, result, record, {**trained, "spec_id": spec_id}, checkpoint)
    return RetrainResult(
        trial=record.trial,
        test_acc=float(result.test_acc),
        epochs=epochs,
        seconds=time.monotonic() - t0,
        checkpoint=str(checkpoint),
        run_id=run_id,
        params=int(cost.params),
        macs=int(cost.macs),
        latency_ms_b1=latency.get(LATENCY_MS_B1),
        train_images_per_s=float(result.train_images_per_s),
    )


def _what_to_train(
    workdir: Path,
    name: str,
    trial: int | None,
    storage: str | None,
    progress: Any,
    source: Any,
    dataset: str | None,
    data_dir: str | None,
) -> tuple[dict[str, Any], TrialRecord]:
    """(the search's saved state, the trial to retrain), or, to fine-tune ``source`` on
    ``dataset``, that data set and the checkpoint's own architecture."""
    if dataset is None:
        return _search_trial(workdir, name, trial, storage, progress)
    return {"config": {"dataset": dataset, "data_dir": data_dir, "seed": 0}}, _finetune_record(
        source
    )


def _record(
    client: Any,
    run_id: str,
    result: Any,
    record: TrialRecord,
    trained: dict[str, Any],
    checkpoint: Path,
) -> None:
    """The retrain's MLflow run: params, curves and final metrics, the checkpoint's path and
    the spec; then it is closed."""
    cost = trained["cost"]
    params = {
        **flatten("train", record.train, {}),
        "epochs": str(trained["epochs"]),
        "seed": str(trained["seed"]),
        "spec_id": trained["spec_id"],
        "params": str(cost["params"]),
        "macs": str(cost["macs"]),
    }
    latency = {k: v for k, v in cost.items() if k not in ("params", "macs")}
    _log_run(client, run_id, result, params, {**trained["metrics"], **latency}, trained["epochs"])
    client.set_tag(run_id, "nas.checkpoint", str(checkpoint))
    client.log_dict(run_id, record.spec, "spec.json")
    client.set_terminated(run_id, "FINISHED")


def _payload(
    record: TrialRecord,
    data: Any,
    result: Any,
    cfg: dict[str, Any],
    trained: dict[str, Any],
    origin: dict[str, Any],
) -> dict[str, Any]:
    """The retrain checkpoint (format :data:`RETRAIN_KIND` v:data:`RETRAIN_VERSION`): the
    spec, weights, training settings, the data's shape, normalisation, range and classes,
    what was measured (``trained``) and where it came from (``origin``)."""
    return {
        "kind": RETRAIN_KIND,
        "version": RETRAIN_VERSION,
        "spec": record.spec,
        "num_classes": data.num_classes,
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
        "train": record.train,
        "dataset": {"name": cfg["dataset"], "data_dir": cfg.get("data_dir")},
        "input": {"dims": data.dims, "channels": data.channels, "size": list(data.size)},
        "normalize": {"mean": data.mean.flatten().tolist(), "std": data.std.flatten().tolist()},
        "input_range": input_range(data),
        "class_names": list(data.classes) or None,
        **trained,
        **origin,
    }


#: A retrain takes at least this many optimizer steps: on a few dozen samples an epoch is
#: one or two steps, and twice the search's epochs would train next to nothing.
MIN_RETRAIN_STEPS = 500


def input_range(data: Any) -> list[float]:
    """[min, max] of the training + validation inputs: ``nas predict`` refuses inputs on
    another scale (raw 0..16 digits for a model trained on 0..255)."""
    lo = min(float(data.train_x.min()), float(data.val_x.min()) if len(data.val_x) else 1e30)
    hi = max(float(data.train_x.max()), float(data.val_x.max()) if len(data.val_x) else -1e30)
    return [lo, hi]


def _wall_seconds(budget: str) -> float:
    """Seconds of a ``--budget`` duration; one line naming it when it is not one."""
    from nas.core.budget import parse_budget

    parsed = parse_budget(budget)
    if parsed.kind != "wall":
        raise UsageError(f"--budget {budget!r}: expected a wall-clock duration (90s, 10m, 1h)")
    return parsed.amount


#: Share of a retrain's budget spent training; the rest loads data, builds, evaluates.
RETRAIN_TRAIN_SHARE = 0.85


def epochs_for_budget(seconds: float, spec: dict[str, Any], data: Any, settings: dict) -> int:
    """Whole epochs of ``spec`` that fit in ``seconds``: a few timed training steps on this
    machine (:func:`workers.calibrate.seconds_per_sample`, the median of three), each
    epoch's training and its evaluation (a forward pass, about a third of a step) counted;
    at least one."""
    import statistics

    from workers.calibrate import seconds_per_sample

    batch = int(settings.get("batch_size", 64))
    timed = statistics.median(
        seconds_per_sample(
            spec, data.num_classes, data.channels, tuple(data.size), batch_size=batch
        )  # fmt: skip
        for _ in range(3)
    )
    per_epoch = timed * (len(data.train_y) + len(data.test_y) / 3)
    return max(1, int(seconds * RETRAIN_TRAIN_SHARE / per_epoch))


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


def _source(init_from: Any, freeze: str | None, dataset: str | None) -> Any:
    """The weights to start from (:class:`nas.retrain.transfer.Source`), or None; the transfer
    options checked before anything is loaded."""
    from nas.retrain import transfer

    source = transfer.read_source(init_from) if init_from else None
    transfer.parse_freeze(freeze)
    if (freeze or dataset) and source is None:
        what = "--freeze" if freeze else "--dataset"
        raise UsageError(f"{what}: give it with --init-from CHECKPOINT (the weights to start from)")
    return source


def _search_trial(
    workdir: Path, name: str, trial: int | None, storage: str | None, progress: Any
) -> tuple[dict[str, Any], TrialRecord]:
    """(the search's saved state, the trial to retrain)."""
    saved, _, study = open_search(workdir, name, storage)
    return saved, choose_trial(trial_records(study), trial, progress)


def open_search(
    workdir: Path, name: str, storage: str | None = None
) -> tuple[dict[str, Any], str, Any]:
    """(search.json's content, the Optuna storage URL, the study) of a search that ran;
    UsageError when there is none. ``storage`` overrides the one the search recorded."""
    saved = load_saved(workdir, name)
    if saved is None:
        raise UsageError(f"--workdir {str(workdir)!r} / --name {name!r}: no search found there")
    url = search_storage(workdir, name, storage) or default_storage(workdir)
    return saved, url, load_study(url, name)


def _initial_model(
    spec: dict[str, Any], data: Any, source: Any, freeze: str | None, seed: int, progress: Any
) -> Any:
    """The network to train, with ``source``'s weights where they match and ``freeze``
    applied (:mod:`nas.retrain.transfer`)."""
    import torch

    import search_spaces
    from nas.retrain import transfer

    _check_input(source, data)
    torch.manual_seed(seed)
    model = search_spaces.build(spec, data.num_classes)
    copied = transfer.load_matching(model, source)
    n_frozen = transfer.freeze(model, *transfer.parse_freeze(freeze))
    if progress is not None:
        progress(
            f"init from {source.path}: {', '.join(copied)} copied"
            + (f", {n_frozen} tensors frozen ({freeze})" if n_frozen else "")
        )
    return model


def _label(record: TrialRecord) -> str:
    """``trial-0007``, or ``finetune`` for a checkpoint fine-tuned on other data."""
    return f"trial-{record.trial:04d}" if record.trial >= 0 else "finetune"


def _finetune_record(source: Any) -> TrialRecord:
    """The architecture and settings of a checkpoint, as the record retrain works from."""
    import search_spaces
    from search_spaces.space import TRAIN_DEFAULTS

    return TrialRecord(
        trial=-1, state="COMPLETE", status="completed", value=None, values=None, params=None,
        macs=None, samples=None, epochs=None, spec_id=search_spaces.spec_id(source.spec),
        spec=source.spec, train=source.train or dict(TRAIN_DEFAULTS),
    )  # fmt: skip


def _check_input(source: Any, data: Any) -> None:
    """The checkpoint's network must take the data's input (its head may change)."""
    want = source.spec["input"]
    got = {"dims": data.dims, "channels": data.channels, "size": list(data.size)}
    if (want["dims"], want["channels"], list(want["size"])) != tuple(got.values()):
        raise UsageError(
            f"--init-from {str(source.path)!r}: the network takes {want['channels']} x "
            f"{want['size']} inputs, the data has {got['channels']} x {got['size']}"
        )


def _train(
    record: TrialRecord, data: Any, epochs: int, seed: int, device: str, model: Any = None
) -> Any:
    """Train the trial's spec (or ``model``, built from it and initialised) with its
    settings on all of ``data``'s training split."""
    import workers

    with bar(epochs, f"retrain {_label(record)}", unit="epoch") as epochs_bar:

        def on_epoch(m: Any, state: dict[str, Any]) -> bool:
            epochs_bar.set_postfix(loss=f"{m.train_loss:.4f}", img_s=f"{m.images_per_s:,.0f}")
            epochs_bar.update(1)
            return False

        result = workers.train(
            record.spec if model is None else model,
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


def _open_run(
    client: Any, exp_id: str, name: str, record: TrialRecord, source: Any = None
) -> tuple[str, str]:
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
    if source is not None:
        tags["nas.init_from"] = str(source.path)
    run = client.create_run(exp_id, run_name=f"retrain-{_label(record)}", tags=tags)
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
