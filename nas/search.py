"""Wiring of one search: Optuna (through Ray's OptunaSearch) samples, Ray Tune evaluates,
MLflow records. See ``docs/INTERFACES.md`` and ../shared/DESIGN.md, "A search, followed as data".

The search itself runs in :func:`run_search`; validation happened before, in
:func:`nas.prepare.prepare_search`, so nothing here needs to check user input.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# Quiet Ray's own console output: the live view is ours. Set before Ray is imported.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

import optuna  # noqa: E402
import ray  # noqa: E402
from ray import tune  # noqa: E402

from nas.budget_stopper import BudgetStopper  # noqa: E402
from nas.callbacks import LiveView, TrackingCallback  # noqa: E402
from nas.config import SearchConfig  # noqa: E402
from nas.results import TrialRecord, best_record, trial_records  # noqa: E402
from nas.runtime import SearchRuntime, activate  # noqa: E402
from nas.sampling import DefineByRun  # noqa: E402
from nas.searcher import NasSearcher  # noqa: E402
from nas.tracking import SearchTracker  # noqa: E402
from workers.trainable import train_trial  # noqa: E402

logger = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
logging.getLogger("mlflow").setLevel(logging.WARNING)


@dataclass
class SearchOutcome:
    """How a search ended and what it left behind."""

    status: str  # "finished" (budget spent or trials done) or "interrupted"
    records: list[TrialRecord]
    spent: float
    parent_run_id: str | None
    seconds: float
    experiment_path: str
    extra: dict[str, Any] = field(default_factory=dict)


def make_sampler(name: str, seed: int, multi_objective: bool) -> optuna.samplers.BaseSampler:
    """The Optuna sampler for ``--sampler``. TPE is multivariate and grouped, which suits
    conditional define-by-run spaces, and lies about running trials so that parallel
    workers do not all sample the same point."""
    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            group=True,
            constant_liar=True,
            n_startup_trials=6,
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(
            seed=seed, population_size=10 if multi_objective else 10
        )
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(
            seed=seed, warn_independent_sampling=False, n_startup_trials=6
        )
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    raise ValueError(f"unknown sampler {name!r}")


def make_scheduler(cfg: SearchConfig) -> Any:
    """ASHA (default), synchronous Hyperband, or FIFO, all on the accuracy metric."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler

    if cfg.scheduler == "asha":
        return ASHAScheduler(
            metric="val_acc",
            mode="max",
            time_attr="training_iteration",
            max_t=cfg.epochs,
            grace_period=min(cfg.grace_epochs, cfg.epochs),
            reduction_factor=3,
        )
    if cfg.scheduler == "hyperband":
        return HyperBandScheduler(
            metric="val_acc",
            mode="max",
            time_attr="training_iteration",
            max_t=cfg.epochs,
            reduction_factor=3,
        )
    return FIFOScheduler()


def start_ray(address: str | None) -> None:
    """Connect to ``--ray-address`` or start a local Ray sized to this machine."""
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": True,
        "logging_level": logging.ERROR,
    }
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, **kwargs)


def _warm_cost_model(space: Any, cfg: SearchConfig) -> None:
    """Sample and count one throw-away spec so the first real trial pays no warm-up."""
    import search_spaces
    from search_spaces.sampler import RandomTrial

    data = cfg.data
    try:
        spec, _ = search_spaces.sample(
            RandomTrial(cfg.seed),
            space,
            dims=data.dims,
            channels=data.channels,
            size=tuple(data.size),
            num_classes=data.num_classes,
        )
        search_spaces.count(spec, data.num_classes)
    except ValueError:
        pass  # a rejected warm-up sample warmed up all the same


def _concurrency(cfg: SearchConfig) -> int:
    if cfg.max_concurrent:
        return cfg.max_concurrent
    cpus = ray.cluster_resources().get("CPU", 1.0)
    by_cpu = int(cpus // max(cfg.cpus_per_trial, 1e-9))
    if cfg.gpus_per_trial > 0:
        gpus = ray.cluster_resources().get("GPU", 0.0)
        by_cpu = min(by_cpu, int(gpus // cfg.gpus_per_trial))
    return max(1, by_cpu)


def save_state(cfg: SearchConfig, spent: float, status: str) -> None:
    """Write ``<workdir>/<name>/search.json`` atomically: the config and the budget spent."""
    path = cfg.study_dir / "search.json"
    payload = {"config": cfg.to_json(), "spent": spent, "status": status, "updated": time.time()}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)


def open_tracker(cfg: SearchConfig, space: Any) -> SearchTracker:
    """Create the workdir and the MLflow store, and warm the cost model up (both slow), so
    that callers can do it while Ray starts."""
    cfg.study_dir.mkdir(parents=True, exist_ok=True)
    tracker = SearchTracker(cfg.tracking_uri, cfg.name, cfg.workdir / "mlartifacts")
    _warm_cost_model(space, cfg)
    return tracker


def run_search(
    cfg: SearchConfig,
    space: Any,
    *,
    spent_before: float = 0.0,
    stream: IO[str] | None = None,
    tracker: SearchTracker | None = None,
) -> SearchOutcome:
    """Run (or resume) the search described by ``cfg``; return its outcome.

    ``tracker`` is :func:`open_tracker`'s, when the caller opened it already."""
    stream = stream or sys.stderr
    t0 = time.monotonic()
    assert cfg.data is not None
    cfg.study_dir.mkdir(parents=True, exist_ok=True)
    exp_path = cfg.ray_dir / cfg.name
    # Ray restores an experiment only to finish the trials Ctrl-C left; a search that ended
    # (budget spent) goes on as a new Ray experiment over the same Optuna study.
    restoring = cfg.resume and tune.Tuner.can_restore(str(exp_path)) and _interrupted(exp_path)

    devices = cfg.gpus_per_trial if cfg.budget.device == "gpu" else cfg.cpus_per_trial
    rt = SearchRuntime(
        budget=cfg.budget,
        devices_per_trial=devices,
        max_epochs=cfg.epochs,
        spent_before=spent_before,
    )
    save_state(cfg, spent_before, "running")

    if tracker is None:
        with ThreadPoolExecutor(max_workers=1) as pool:  # side by side with Ray's start
            opening = pool.submit(open_tracker, cfg, space)
            start_ray(cfg.ray_address)
            tracker = opening.result()
    start_ray(cfg.ray_address)
    rt.tracker = tracker
    parent = tracker.start_search_run(cfg.to_json(), resume=cfg.resume)

    storage = optuna.storages.RDBStorage(cfg.storage)
    previous = (
        trial_records(optuna.load_study(study_name=cfg.name, storage=storage)) if cfg.resume else []
    )
    best_before = best_record(previous)
    rt.live = LiveView(
        rt,
        stream=stream,
        trials_before=0 if restoring else _evaluated(previous),
        best_before=best_before.value if best_before else None,
    )
    activate(rt)

    trainable = tune.with_resources(
        train_trial, {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial}
    )
    status = "finished"
    try:
        if restoring:
            tuner = tune.Tuner.restore(
                str(exp_path), trainable=trainable, resume_unfinished=True, resume_errored=False
            )
        else:
            tuner = _new_tuner(cfg, space, storage, trainable, previous)
        stream.write(
            f"nas: search '{cfg.name}' on {cfg.data.name} ({cfg.data.dims}D, "
            f"{cfg.data.num_classes} classes), budget {cfg.budget.text}"
            f"{', resumed' if cfg.resume else ''}; MLflow run {parent}\n"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tuner.fit()
        if _interrupted(exp_path):
            status = "interrupted"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        rt.live.draw(final=True)
        study = optuna.load_study(study_name=cfg.name, storage=storage)
        if status == "interrupted":
            tracker.mark_unfinished("interrupted")  # Optuna keeps them RUNNING: --resume goes on
        else:
            tracker.mark_unfinished("stopped")
            stop_running_trials(study)
        records = trial_records(study)
        spent = rt.spent
        save_state(cfg, spent, status)
        best = best_record(records)
        summary = {
            "trials": float(len(records)),
            "best_val_acc": best.value if best else None,
            "budget_spent": spent,
        }
        tracker.end_search_run(
            "KILLED" if status == "interrupted" else "FINISHED",
            summary,
            [r.to_json() for r in records],
        )
        activate(None)
    if rt.gave_up:
        stream.write(f"nas: the search stopped early: {rt.gave_up}\n")
    return SearchOutcome(
        status=status,
        records=records,
        spent=spent,
        parent_run_id=parent,
        seconds=time.monotonic() - t0,
        experiment_path=str(exp_path),
    )


def stop_running_trials(study: optuna.Study) -> None:
    """Trials still running when the budget ran out end as PRUNED, status ``stopped``,
    with the epochs and accuracy they reached (Ray stops them without telling the searcher)."""
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "status", "stopped")
        study._storage.set_trial_user_attr(t._trial_id, "reason", "the budget ran out")
        if t.intermediate_values:
            last = max(t.intermediate_values)
            study._storage.set_trial_user_attr(t._trial_id, "epochs", last)
            study._storage.set_trial_user_attr(t._trial_id, "val_acc", t.intermediate_values[last])
        study.tell(t.number, state=optuna.trial.TrialState.PRUNED)


def _evaluated(records: list[TrialRecord]) -> int:
    return sum(1 for r in records if r.status not in ("rejected", "duplicate"))


def _new_tuner(
    cfg: SearchConfig,
    space: Any,
    storage: optuna.storages.BaseStorage,
    trainable: Any,
    previous: list[TrialRecord],
) -> tune.Tuner:
    searcher = NasSearcher(
        DefineByRun(cfg, space, cfg.data),
        metric=cfg.metrics if cfg.multi_objective else cfg.metrics[0],
        mode=cfg.modes if cfg.multi_objective else cfg.modes[0],
        sampler=make_sampler(cfg.sampler, cfg.seed, cfg.multi_objective),
        storage=storage,
        study_name=cfg.name,
        max_epochs=cfg.epochs,
    )
    if cfg.budget.kind == "trials":
        num_samples = max(1, int(cfg.budget.amount) - _evaluated(previous))
    else:
        num_samples = -1
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=make_scheduler(cfg),
            num_samples=num_samples,
            max_concurrent_trials=_concurrency(cfg),
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=cfg.name,
            storage_path=str(cfg.ray_dir),
            stop=BudgetStopper(),
            callbacks=[TrackingCallback()],
            failure_config=tune.FailureConfig(max_failures=2),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=0,
        ),
    )


def trial_dirname(trial: Any) -> str:
    """Short trial folders named after the Optuna trial (Ray's default embeds the config)."""
    return f"trial_{int(trial.config.get('trial_number', 0)):04d}_{trial.trial_id}"


def _interrupted(exp_path: Path) -> bool:
    """True when the experiment still has trials Ray would resume (Ctrl-C, not the budget)."""
    try:
        from ray.tune import ExperimentAnalysis

        analysis = ExperimentAnalysis(str(exp_path))
    except Exception:  # no state written: nothing to resume
        return False
    return any(t.status in ("RUNNING", "PENDING", "PAUSED") for t in analysis.trials)
