"""Wiring of one search: Optuna samples (our ask-and-tell searcher), Ray Tune evaluates,
MLflow records, all through one :class:`~nas.study.events.SearchState` fed by events. See
``docs/INTERFACES.md`` and ../shared/DESIGN.md, "A search, followed as data".

The search itself runs in :func:`run_search`; validation happened before, in
:func:`nas.driver.prepare.prepare_search`, so nothing here needs to check user input.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import IO, Any

import optuna
import ray
from ray import tune

from nas.cluster import search_lock as lock
from nas.cluster.ray_cluster import check_nodes_reach
from nas.core.config import SearchConfig, load_saved, save_state
from nas.core.credentials import mask_url
from nas.core.errors import UsageError
from nas.driver.define_by_run import DefineByRun
from nas.driver.history_window import HistoryWindow
from nas.driver.ledger import Ledger, is_disk_full
from nas.driver.live_view import LiveView
from nas.driver.local_search import AroundIncumbent
from nas.driver.pareto_halving import ParetoHalving
from nas.driver.plan import Plan
from nas.driver.plan_on_workers import plan_search, space_draws
from nas.driver.ray_adapters import BudgetStopper, EventCallback, activate
from nas.driver.repeat_best import repeat_best, reserve_seconds
from nas.driver.searcher import NasSearcher, close_open_trials
from nas.driver.warm_start import enqueue
from nas.study.events import SearchState
from nas.study.records import TrialRecord, best_record, trial_records
from nas.study.status_table import TrialStatus, chance_level
from nas.study.storage import open_study, unavailable
from nas.tracking.spool import unreachable
from nas.tracking.tracker import SearchTracker
from workers.trainable import train_trial
from workers.trial import SAMPLES, TRIAL_NUMBER, VAL_ACC

logger = logging.getLogger(__name__)
#: Events MLflow could not take while its server was away (:mod:`nas.tracking.spool`).
SPOOL_FILE = "mlflow-spool.jsonl"
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
logging.getLogger("mlflow").setLevel(logging.WARNING)


@dataclass
class SearchOutcome:
    """How a search ended and what it left behind."""

    # "finished" (budget spent or trials done), "interrupted" (Ctrl-C) or "stopped" (early,
    # for extra["stop_reason"], e.g. a full disk)
    status: str
    records: list[TrialRecord]
    spent: float
    parent_run_id: str | None
    seconds: float
    experiment_path: str
    extra: dict[str, Any] = field(default_factory=dict)


#: NSGA-II breeds about this many generations from the configurations a search evaluates.
NSGA2_GENERATIONS = 4
NSGA2_POPULATION_RANGE = (4, 50)


def nsga2_population(cfg: SearchConfig, plan: Plan) -> int:
    """NSGA-II's population from the plan: the configurations the lowest rung is expected to
    see (or the ``--budget N trials``) over :data:`NSGA2_GENERATIONS`, so that the budget
    breeds several generations instead of drawing one at random; within
    :data:`NSGA2_POPULATION_RANGE` (its low end when nothing says how many)."""
    low, high = NSGA2_POPULATION_RANGE
    seen = plan.configs[0] if plan.configs else 0
    if not seen and cfg.budget.kind == "trials":
        seen = int(cfg.budget.amount)
    return max(low, min(high, seen // NSGA2_GENERATIONS))


def make_sampler(name: str, seed: int, population: int = 10) -> optuna.samplers.BaseSampler:
    """The Optuna sampler for ``--sampler``. TPE is multivariate and grouped, which suits
    conditional define-by-run spaces, lies about running trials so that parallel workers
    do not all sample the same point, and fits a bounded window of the history
    (:class:`~nas.driver.history_window.HistoryWindow`: the best 25 and the latest 75 trials), so
    a configuration costs the driver as much at trial 5,000 as at trial 200. ``local``
    mutates one decision of one of the best trials so far for most trials and lets that
    TPE explore the rest (:class:`~nas.driver.local_search.AroundIncumbent`). ``nsga2``
    breeds generations of ``population`` (:func:`nsga2_population`).
    TPE and NSGA-II read the trials' constraints (``--constraint``,
    :mod:`nas.driver.constraints`)."""
    if name in ("tpe", "local"):
        tpe = optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            group=True,
            constant_liar=True,
            n_startup_trials=6,
        )
        if name == "tpe":
            return HistoryWindow(tpe)
        return AroundIncumbent(HistoryWindow(tpe), seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(
            seed=seed, warn_independent_sampling=False, n_startup_trials=6
        )
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    raise ValueError(f"unknown sampler {name!r}")


def make_scheduler(cfg: SearchConfig, plan: Plan) -> Any:
    """ASHA (default), synchronous Hyperband, or FIFO on the accuracy, with the plan's rungs
    in training samples (the fidelity unit, :mod:`nas.driver.plan`). With several
    objectives, ASHA and Hyperband are both successive halving over all of them at the
    plan's rungs (:class:`~nas.driver.pareto_halving.ParetoHalving`): ranked on accuracy
    alone, the small networks a cost objective asks for would be stopped first."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler

    if cfg.scheduler == "none":
        return FIFOScheduler()
    if cfg.multi_objective:
        return ParetoHalving(metrics=cfg.metrics, modes=cfg.modes, rungs=plan.rungs,
                             eta=plan.eta, time_attr=SAMPLES)  # fmt: skip
    rungs = {"metric": VAL_ACC, "mode": "max", "time_attr": SAMPLES,
             "max_t": plan.max_samples, "reduction_factor": plan.eta}  # fmt: skip
    if cfg.scheduler == "asha":
        return ASHAScheduler(grace_period=plan.grace_samples, **rungs)
    return HyperBandScheduler(**rungs)


def _concurrency(cfg: SearchConfig) -> int:
    if cfg.max_concurrent:
        return cfg.max_concurrent
    cpus = ray.cluster_resources().get("CPU", 1.0)
    by_cpu = int(cpus // max(cfg.cpus_per_trial, 1e-9))
    if cfg.gpus_per_trial > 0:
        gpus = ray.cluster_resources().get("GPU", 0.0)
        by_cpu = min(by_cpu, int(gpus // cfg.gpus_per_trial))
    return max(1, by_cpu)


def open_tracker(cfg: SearchConfig, space: Any) -> SearchTracker:
    """Create the workdir and the MLflow store, and draw the plan's sample of architectures
    (which warms the cost model up; all slow), so that callers can do it while Ray starts.
    On a cluster (Ray connected) every node must first reach the checkpoints: nothing is
    written before that is known."""
    if cfg.ray_address:
        check_nodes_reach(cfg.checkpoint_root)
    lock.acquire(cfg.study_dir, cfg.name)  # one driver per search, before any write
    try:
        tracker = _open_tracking(cfg)
    except UsageError:  # refused by MLflow (credentials, permission): nothing written
        lock.abandon(cfg.study_dir)
        raise
    cfg.study_dir.mkdir(parents=True, exist_ok=True)
    space_draws(cfg, space)  # warms the cost model up; the plan reuses the draws
    return tracker


def _open_tracking(cfg: SearchConfig) -> SearchTracker:
    """The MLflow side, checked before anything is written: a server that does not answer,
    refuses the credentials or does not let this user write is one line."""
    from mlflow.exceptions import MlflowException

    where = f"--tracking-uri {mask_url(cfg.tracking_uri)!r}"
    try:
        tracker = SearchTracker(cfg.tracking_uri, cfg.name)
        tracker.check_write_access()
        return tracker
    except MlflowException as exc:
        code = exc.get_http_status_code()
        if code == 401:
            raise UsageError(
                f"{where}: the server refused the credentials (401); set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to a user of it"
            ) from None
        if code == 403:
            raise UsageError(
                f"{where}: user {os.environ.get('MLFLOW_TRACKING_USERNAME', '?')!r} may not "
                f"write to experiment {cfg.name!r} (403); ask for EDIT permission on it"
            ) from None
        if unreachable(exc):
            raise UsageError(f"{where}: the MLflow server did not answer") from None
        raise


def run_search(
    cfg: SearchConfig,
    space: Any,
    *,
    tracker: SearchTracker,
    spent_before: float = 0.0,
    stream: IO[str] | None = None,
) -> SearchOutcome:
    """Run (or resume) the search described by ``cfg``; return its outcome. Ray is
    running and ``tracker`` is :func:`open_tracker`'s: ``nas.commands.search`` opened both
    side by side (the one start-up path)."""
    stream = stream or sys.stderr
    t0 = time.monotonic()
    exp_path = cfg.experiment_path
    # Ray restores an experiment only to finish the trials Ctrl-C left; a search that ended
    # (budget spent) goes on as a new Ray experiment over the same Optuna study.
    restoring = cfg.resume and tune.Tuner.can_restore(exp_path) and _interrupted(exp_path)
    devices = cfg.gpus_per_trial if cfg.budget.device == "gpu" else cfg.cpus_per_trial
    state = SearchState(
        cfg.budget,
        devices,
        chance=chance_level(cfg.data.num_classes),
        spent_before=spent_before,
    )
    saved_plan = (load_saved(cfg.workdir, cfg.name) or {}).get("plan") if cfg.resume else None
    save_state(cfg, spent_before, "running", saved_plan)
    tracker.describe_data(cfg.data, cfg.val_fraction, cfg.seed)
    parent = tracker.start_search_run(cfg.to_json(), resume=cfg.resume)
    tracker.use_spool(cfg.study_dir / SPOOL_FILE)  # and send what an earlier run kept
    plan = _plan(cfg, space, state, saved_plan, tracker, stream)
    study, previous = _open_study(cfg, space, state, plan, stream)
    state.reserved = reserve_seconds(cfg, plan, _concurrency(cfg))
    state.define_by_run = DefineByRun(cfg, space, cfg.data, plan)
    tracker.start_plots(study)
    live = LiveView(state, stream=stream, trials_before=0 if restoring else _evaluated(previous))
    ledger = Ledger(cfg, state, plan.to_json())
    for handler in (tracker.handle, live.handle, ledger.handle):
        state.subscribe(handler)
    activate(cfg.name, state)
    status = "interrupted"  # until fit returns: Ctrl-C leaves it so
    try:
        tuner = _tuner(cfg, state, previous, exp_path, restoring, plan)
        stream.write(
            f"nas: search '{cfg.name}' on {cfg.data.name} ({cfg.data.dims}D, "
            f"{cfg.data.num_classes} classes), budget {cfg.budget.text}"
            f"{', resumed' if cfg.resume else ''}; MLflow run {parent}\n"
            f"nas: watch it: {tracker.link() or f'nas ui --workdir {cfg.workdir} --name {cfg.name}'}\n"
        )
        status = _fit(tuner, state, ledger, cfg)
        if status == "finished":
            repeat_best(cfg, study, plan, _dataset(cfg), _concurrency(cfg), tracker, stream)
    finally:
        try:
            records = _finish(state, study, tracker, status, ledger, stream)
        finally:
            live.draw(final=True)  # after the close: trials the budget stopped are counted
            activate(cfg.name, None)
            lock.release(cfg.study_dir)
    if state.gave_up:
        stream.write(f"nas: the search stopped early: {state.gave_up}\n")
    return SearchOutcome(
        status=status,
        records=records,
        spent=state.spent,
        parent_run_id=parent,
        seconds=time.monotonic() - t0,
        experiment_path=exp_path,
        extra={"stop_reason": state.stop_reason} if state.stop_reason else {},
    )


def _fit(tuner: tune.Tuner, state: SearchState, ledger: Ledger, cfg: SearchConfig) -> str:
    """Run Ray's trials; how they ended: finished, interrupted (Ctrl-C, trials left for
    ``--resume``) or stopped (early, for :attr:`SearchState.stop_reason`: a full disk)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state.start_clock()
            tuner.fit()
    except Exception as exc:  # a store that cannot write any more stops the search cleanly
        down = unavailable(exc)
        if down is not None:
            state.stop_reason = (
                f"{down} at {cfg.storage.split('@')[-1]}: continue with nas search --resume "
                f"--workdir {cfg.workdir} --name {cfg.name} once it is back"
            )
        elif is_disk_full(exc):
            ledger.disk_full(cfg.workdir)
        elif node_out_of_memory(exc):
            state.stop_reason = (
                "Ray's memory monitor killed a trial's worker while it was starting (the node "
                "ran low on memory), which Ray Tune does not retry; lower --max-concurrent or "
                f"--max-params, then continue with nas search --resume --workdir {cfg.workdir} "
                f"--name {cfg.name}"
            )
        else:
            raise
    if state.stop_reason:
        return "stopped"
    return "interrupted" if _interrupted(cfg.experiment_path) else "finished"


def node_out_of_memory(exc: BaseException) -> bool:
    """True when Ray's memory monitor killed a worker outside a trial's training step
    (``ImplicitFunc.__init__``), which Ray Tune raises out of ``Tuner.fit`` (seen with a
    7 GB random architecture on Fashion-MNIST; a kill during training is a trial error that
    ``FailureConfig`` retries)."""
    while exc is not None:
        if isinstance(exc, ray.exceptions.OutOfMemoryError) or "running low on memory" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _open_study(
    cfg: SearchConfig, space: Any, state: SearchState, plan: Plan, stream: IO[str]
) -> tuple[optuna.Study, list[TrialRecord]]:
    """The study and, on ``--resume``, its trials so far (their best is the state's best);
    a new study gets its warm-start trials queued."""
    sampler = make_sampler(cfg.sampler, cfg.seed, nsga2_population(cfg, plan))
    study, state.storage = open_study(cfg, sampler)
    state.study = study
    previous = trial_records(study) if cfg.resume else []
    if not cfg.resume:
        stream.write(f"nas: {enqueue(study, cfg, space, plan).describe()}\n")
    best_before = best_record(previous)
    state.best = best_before.value if best_before else None
    return study, previous


def _plan(
    cfg: SearchConfig,
    space: Any,
    state: SearchState,
    saved: dict[str, Any] | None,
    tracker: SearchTracker,
    stream: IO[str],
) -> Plan:
    """The plan this search started with (``saved``, on ``--resume``), or a new one;
    printed, logged to MLflow and saved in search.json."""
    plan = Plan.from_json(saved) if saved else plan_search(cfg, space, state, _concurrency(cfg))
    stream.write(f"nas: {plan.describe()}\n")
    tracker.log_plan(plan.to_json())
    save_state(cfg, state.spent_before, "running", plan.to_json())
    return plan


def _finish(
    state: SearchState,
    study: optuna.Study,
    tracker: SearchTracker,
    status: str,
    ledger: Ledger,
    stream: IO[str],
) -> list[TrialRecord]:
    """Close what is still open, save the spent budget and close the search run. When the
    search stopped for a full disk or a database that went away, writes that still fail
    are given up: each store keeps what it had (a transaction is whole or absent), and
    ``--resume`` closes the rest."""
    try:
        records = _close(state, study, status, ledger)
        _close_tracking(state, tracker, status, records, stream)
        return records
    except Exception:
        if state.stop_reason is None:
            raise
        logger.debug("closing writes failed after: %s", state.stop_reason, exc_info=True)
        return []
    finally:
        ledger.close()


def _close(
    state: SearchState, study: optuna.Study, status: str, ledger: Ledger
) -> list[TrialRecord]:
    """Optuna's side: trials still open end (an interrupted search keeps them RUNNING for
    ``--resume``); the budget spent is saved."""
    if status != "interrupted":
        close_open_trials(state, study)
    ledger.save(status)
    return trial_records(study)


def _close_tracking(
    state: SearchState,
    tracker: SearchTracker,
    status: str,
    records: list[TrialRecord],
    stream: IO[str],
) -> None:
    """MLflow's side, after Optuna's (it follows it): what the spool holds, runs still open,
    the search run. A server that is away keeps it all for ``--resume``, said in one line."""
    closed = False
    try:
        if tracker.spool is not None and tracker.spool.pending:
            tracker.spool.flush()
        if status == "interrupted":
            tracker.mark_unfinished("interrupted; --resume continues it")
        else:
            tracker.mark_unfinished(state.stopped_why or "the budget ran out")
        tracker.reconcile(records)
        best = best_record(records)
        summary = {
            "trials": float(len(records)),
            "best_val_acc": best.value if best else None,
            "budget_spent": state.spent,
        }
        tracker.end_search_run(
            "KILLED" if status == "interrupted" else "FINISHED", summary, records
        )
        closed = True
    except Exception as exc:
        if not unreachable(exc):
            raise
    finally:
        tracker.stop_system_metrics()
    if tracker.unsent or not closed:
        where = tracker.spool.path if tracker.spool is not None else "the spool"
        stream.write(
            f"nas: the MLflow server did not answer: {tracker.unsent} records kept in "
            f"{where}; nas search --resume sends them and closes the search's runs\n"
        )


def _evaluated(records: list[TrialRecord]) -> int:
    """Trials that reached a worker (rejected and reused ones did not)."""
    skipped = (TrialStatus.REJECTED, TrialStatus.REUSED)
    return sum(1 for r in records if TrialStatus.parse(r.status) not in skipped)


def _tuner(
    cfg: SearchConfig,
    state: SearchState,
    previous: list[TrialRecord],
    exp_path: str,
    restoring: bool,
    plan: Plan,
) -> tune.Tuner:
    """Ray's Tuner: restored to finish interrupted trials, or new over the study of
    ``state`` (whose live handles a restored searcher finds). The dataset goes into Ray's
    object store once; trials on any node read it from there."""
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, data=_dataset(cfg)),
        {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial},
    )
    if restoring:
        try:
            return tune.Tuner.restore(
                exp_path, trainable=trainable, resume_unfinished=True, resume_errored=False
            )
        except (ImportError, AttributeError, pickle.UnpicklingError) as exc:
            # Ray pickled the searcher, stopper and callbacks of another nas version: the
            # study goes on as a new Ray experiment; its unfinished trials end driver_lost.
            logger.warning("nas: Ray state from another version (%s); starting anew", exc)
    searcher = NasSearcher(
        state.define_by_run,
        study=state.study,
        metrics=cfg.metrics,
        storage=state.storage,
        constraints=cfg.constraints,
    )
    if cfg.budget.kind == "trials":
        num_samples = max(1, int(cfg.budget.amount) - _evaluated(previous))
    else:
        num_samples = -1
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=make_scheduler(cfg, plan),
            num_samples=num_samples,
            max_concurrent_trials=_concurrency(cfg),
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=cfg.name,
            storage_path=cfg.checkpoint_root,
            stop=BudgetStopper(cfg.name),
            callbacks=[EventCallback(cfg.name)],
            failure_config=tune.FailureConfig(max_failures=2),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=0,
        ),
    )


def _dataset(cfg: SearchConfig) -> Any:
    """The search's dataset on the CPU, as :func:`nas.driver.prepare.probe_dataset` loaded it (a
    cache hit in the driver)."""
    import workers

    return workers.get_dataset(
        cfg.data.name, cfg.data.data_dir, val_fraction=cfg.val_fraction, seed=cfg.seed
    )


def trial_dirname(trial: Any) -> str:
    """Short trial folders named after the Optuna trial (Ray's default embeds the config)."""
    return f"trial_{int(trial.config.get(TRIAL_NUMBER, 0)):04d}_{trial.trial_id}"


def _interrupted(exp_path: str) -> bool:
    """True when the experiment still has trials Ray would resume (Ctrl-C, not the budget)."""
    try:
        from ray.tune import ExperimentAnalysis

        analysis = ExperimentAnalysis(exp_path)
    except (ValueError, OSError, ImportError, AttributeError, pickle.UnpicklingError):
        # no experiment state written, or one pickled by another nas version: not resumable
        return False
    return any(t.status in ("RUNNING", "PENDING", "PAUSED") for t in analysis.trials)
