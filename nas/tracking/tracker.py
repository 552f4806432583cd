"""MLflow tracking of a search: one parent run per search, one nested run per trial.

Everything goes through :class:`mlflow.tracking.MlflowClient` from the driver process
(workers never import MLflow). Runs are found again by tags, never by in-memory state, so a
resumed search keeps writing into the runs it started, and ``nas leaderboard`` / retrain can
find them.

Tags: ``nas.role`` (search | trial | retrain), ``nas.study``, ``nas.trial`` (Optuna trial
number), ``nas.ray_trial_id``, ``nas.node`` / ``nas.host`` (the IP and host name of the Ray
node that ran it last),
``nas.note`` (what the worker had to say, e.g. a refused checkpoint), ``nas.recoveries`` (times its worker died and Ray resumed it from its checkpoint),
``nas.status`` (the status table, :mod:`nas.study.status_table`),
``nas.reason``, ``nas.spec_id``, ``nas.best`` (on the best trial); ``mlflow.parentRunId``
nests the trials under the search run, ``mlflow.note.content`` is a run's one-line
description. The search run carries ``nas.budget`` (updated by ``--resume``; params cannot
change), ``nas.best_trial`` / ``nas.best_run_id`` and a description linking the best trial.

What a trial run holds: a few params (:func:`nas.tracking.run_summary.trial_params`), ``spec.json``
and ``arch_summary.txt``, the data as an MLflow dataset input, ``params`` / ``macs`` once,
``train_loss`` / ``val_loss`` / ``val_acc`` / ``lr`` per report (step: training samples
seen), and at its end the fidelity reached (``samples``, ``epochs``), latency and the peak
memory its worker measured. The search run holds ``best_val_acc`` after every trial (step:
trials ended; the optimisation history as a curve), the leaderboard with run ids, Optuna's
plots (:mod:`nas.tracking.plots`) and MLflow's system metrics of the driver's machine.

:class:`SearchTracker` subscribes to the search's events (:mod:`nas.study.events`): it imports
neither Ray nor any global.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from functools import singledispatchmethod
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag

from nas.core.config import KEPT_ON_RESUME
from nas.core.credentials import without_userinfo
from nas.study.events import (
    EpochReported,
    TrialEnded,
    TrialNeverRan,
    TrialRecovered,
    TrialReused,
    TrialStarted,
)
from nas.study.records import best_record
from nas.study.status_table import TrialStatus, row
from nas.tracking import store as mlflow_store
from nas.tracking import view as mlflow_view
from nas.tracking.plots import PlotRefresher
from nas.tracking.run_summary import dataset_entity, description, trial_params
from nas.tracking.spool import Spool
from workers.trial import (
    EPOCH,
    FOLDS,
    IMAGES_PER_S,
    LATENCY_MS_B1,
    LATENCY_MS_B64,
    LR,
    MACS,
    PARAMS,
    PEAK_MEMORY_MB,
    SAMPLES,
    STATUS,
    TRAIN_LOSS,
    VAL_ACC,
    VAL_ACC_STD,
    VAL_LOSS,
    TrialConfig,
)

logger = logging.getLogger(__name__)

#: The tag of a multi-objective search's Pareto-front trial runs.
PARETO_TAG = "nas.pareto"
PARAM_LIMIT = 6000  # MLflow's param value limit; longer values are artifacts only


def flatten(prefix: str, value: Any, out: dict[str, str]) -> dict[str, str]:
    """Nested spec / settings -> ``{"spec.stages.0.out": "32", ...}`` for MLflow params."""
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
        for i, v in enumerate(value):
            flatten(f"{prefix}.{i}", v, out)
    else:
        out[prefix] = json.dumps(value) if not isinstance(value, str) else value
    return out


def log_params(
    client: Any, run_id: str, values: dict[str, str], metrics: list[Metric] | None = None
) -> None:
    """Log string params, cut to MLflow's value limit, 100 per call (its batch limit), with
    ``metrics`` in the first call (one request for a trial's params and constants)."""
    params = [Param(k, v[:PARAM_LIMIT]) for k, v in values.items()]
    for i in range(0, max(len(params), 1), 100):
        client.log_batch(
            run_id, params=params[i : i + 100], metrics=(metrics or []) if i == 0 else []
        )


class SearchTracker:
    """The MLflow side of one study: its experiment, its parent run, its trial runs."""

    def __init__(self, tracking_uri: str, study: str) -> None:
        self.tracking_uri = tracking_uri
        self.study = study
        self.client = mlflow_store.client(tracking_uri)
        self.experiment_id = mlflow_store.experiment_id(self.client, study, tracking_uri)
        self.parent_run_id: str | None = None
        self._trial_runs: dict[int, str] = {}
        self._pareto: set[int] = set()  # trials whose runs carry PARETO_TAG
        self._tags: dict[tuple[int, str], str] = {}  # the last node / note tagged per trial
        self._last_step: dict[int, int] = {}  # the last metric step logged per trial
        self._last_result: dict[int, dict[str, Any]] = {}  # the last report per trial
        self._ended = 0  # trials ended so far: the step of the search run's best_val_acc
        self._best: tuple[float, int] | None = None  # (val_acc, trial) of the best trial
        self._dataset: Any = None  # the MLflow dataset entity of the search's data
        self._num_classes: int | None = None
        self._system: Any = None  # MLflow's system-metrics monitor of the search run
        self.plots: PlotRefresher | None = None
        self.spool: Spool | None = None

    def check_write_access(self) -> None:
        """Write something harmless (the experiment's tags, also on one an older version
        made), so that a user who may only read fails here, before the search writes."""
        for key, value in {**mlflow_store.EXPERIMENT_TAGS, "nas.study": self.study}.items():
            self.client.set_experiment_tag(self.experiment_id, key, value)
        mlflow_view.install_view(self.client, self.experiment_id)

    def describe_data(self, data: Any, val_fraction: float, seed: int) -> None:
        """The search's data (:class:`nas.core.config.DataInfo`): every run logs it as its dataset
        input, and trial runs size their architecture summary with its classes."""
        self._dataset = dataset_entity(data, val_fraction, seed)
        self._num_classes = data.num_classes

    def link(self, base_url: str | None = None) -> str | None:
        """The trials view of this search on the UI at ``base_url`` (the tracking server's
        own address when it is one; None for a local store without a UI address)."""
        server = self.tracking_uri if self.tracking_uri.startswith("http") else None
        base = base_url or (without_userinfo(server) if server else None)
        return mlflow_view.link(base, self.experiment_id) if base else None

    # -- events ----------------------------------------------------------------------------

    def use_spool(self, path: Path) -> int:
        """Keep events the server cannot take in ``path`` (:mod:`nas.tracking.spool`) and send what an
        earlier run left there; returns how many are still pending."""
        self.spool = Spool(path, self.record)
        return self.spool.flush() if self.spool.pending else 0

    def handle(self, event: Any) -> None:
        """Record one lifecycle event, through the spool when there is one."""
        if self.spool is None:
            self.record(event)
        else:
            self.spool.handle(event)

    @property
    def unsent(self) -> int:
        """Events kept in the spool, not yet in MLflow."""
        return len(self.spool.pending) if self.spool is not None else 0

    @singledispatchmethod
    def record(self, event: Any) -> None:
        """Record one lifecycle event in MLflow now (events it does not track are ignored)."""

    @record.register
    def _(self, event: TrialStarted) -> None:
        self.trial_run(event.number, event.config, ray_trial_id=event.ray_trial_id)

    @record.register
    def _(self, event: TrialRecovered) -> None:
        run_id = self._trial_runs.get(event.number)
        if run_id is not None:
            self.client.set_tag(run_id, "nas.recoveries", str(event.failures))

    @record.register
    def _(self, event: EpochReported) -> None:
        self.log_epoch(event.number, event.result)

    @record.register
    def _(self, event: TrialEnded) -> None:
        self.end_trial(event.number, event.status, event.reason, event.extra)

    @record.register
    def _(self, event: TrialReused) -> None:
        self.trial_run(event.number, event.config)
        if event.values:
            self.log_epoch(event.number, {VAL_ACC: event.values[0]})
        self.end_trial(event.number, event.status, event.reason)

    @record.register
    def _(self, event: TrialNeverRan) -> None:  # rejected, or cancelled by the budget
        self.trial_run(event.number, event.config)
        self.end_trial(event.number, event.status, event.reason)

    # -- the search run --------------------------------------------------------------------

    def start_search_run(self, config: dict[str, Any], resume: bool) -> str:
        """Create the search's parent run, or reopen it on ``--resume``. Its params are the
        settings a search keeps for life (``KEPT_ON_RESUME``); the budget, which may grow on
        ``--resume``, is the ``nas.budget`` tag, and ``search_config.json`` is the config of
        the latest run."""
        run_id = self._reopen_search_run() if resume else None
        if run_id is None:
            run = self.client.create_run(
                self.experiment_id,
                run_name=f"{self.study}-search",
                tags={"nas.role": "search", "nas.study": self.study},
            )
            run_id = self.parent_run_id = run.info.run_id
            kept = {k: config.get(k) for k in ("name", *KEPT_ON_RESUME)}
            log_params(self.client, run_id, flatten("", kept, {}))
            self._log_dataset(run_id)
        self.client.set_tag(run_id, "nas.budget", str(config.get("budget", "")))
        self.client.log_dict(run_id, config, "search_config.json")
        self._start_system_metrics(resume=resume)
        return run_id

    def _reopen_search_run(self) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string="tags.`nas.role` = 'search'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            return None
        parent = runs[0]
        self.parent_run_id = parent.info.run_id
        self.client.update_run(self.parent_run_id, status="RUNNING")
        self._load_trial_runs()
        history = self.client.get_metric_history(self.parent_run_id, "best_val_acc")
        self._ended = max((m.step for m in history), default=0)
        best = parent.data.tags.get("nas.best_trial")
        if best is not None and "best_val_acc" in parent.data.metrics:
            self._best = (parent.data.metrics["best_val_acc"], int(best))
        return self.parent_run_id

    def _start_system_metrics(self, resume: bool) -> None:
        """MLflow's CPU / memory / disk / network (and GPU) metrics of this machine, every
        10 s, on the search run, until :meth:`end_search_run`."""
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            logging.getLogger("mlflow.system_metrics").setLevel(logging.ERROR)
            self._system = SystemMetricsMonitor(
                self.parent_run_id, resume_logging=resume, tracking_uri=self.tracking_uri
            )
            self._system.start()
        except Exception as exc:  # noqa: BLE001 (no psutil, ...): the search goes on without
            logger.warning("nas: no system metrics on the search run: %s", exc)
            self._system = None

    def stop_system_metrics(self) -> None:
        """Stop the system-metrics thread (idempotent)."""
        if self._system is not None:
            self._system.finish()
            self._system = None

    def start_plots(self, study: Any) -> None:
        """Draw the study's plots on the search run during the search and at its end."""
        if self.parent_run_id is not None:
            self.plots = PlotRefresher(study, self.client, self.parent_run_id)

    def _log_dataset(self, run_id: str) -> None:
        if self._dataset is None:
            return
        from mlflow.entities import DatasetInput, InputTag

        tags = [InputTag("mlflow.data.context", "training")]
        self.client.log_inputs(run_id, datasets=[DatasetInput(self._dataset, tags)])

    def log_plan(self, plan: dict[str, Any]) -> None:
        """The fidelity plan on the search run: ``plan.json`` and ``plan.*`` params."""
        if self.parent_run_id is None:
            return
        self.client.log_dict(self.parent_run_id, plan, "plan.json")
        existing = self.client.get_run(self.parent_run_id).data.params
        values = {f"plan.{k}": json.dumps(v) for k, v in plan.items() if k != "report_at"}
        log_params(
            self.client, self.parent_run_id, {k: v for k, v in values.items() if k not in existing}
        )

    def end_search_run(
        self, status: str, summary: dict[str, float], records: list[Any] | None
    ) -> None:
        """Close the parent run: the summary metrics, the best trial tagged and linked, the
        leaderboard (``leaderboard.json`` / ``.csv``, with run ids) and the final plots.
        ``records``: :class:`nas.study.records.TrialRecord` s, best first."""
        if self.parent_run_id is None:
            return
        now = _now_ms()
        metrics = [  # at the history's last step, so best_val_acc stays one curve
            Metric(k, float(v), now, self._ended) for k, v in summary.items() if v is not None
        ]
        self.client.log_batch(self.parent_run_id, metrics=metrics)
        if records is not None:
            best = best_record(records)
            if best is not None and best.value is not None:
                self._mark_best(best.trial, best.value)
            self._mark_front(records)
            rows = [{**r.to_json(), "run_id": self._trial_runs.get(r.trial)} for r in records]
            self.client.log_dict(self.parent_run_id, rows, "leaderboard.json")
            self.client.log_text(self.parent_run_id, _csv(rows), "leaderboard.csv")
        if self.plots is not None:
            self.plots.final()
        self.stop_system_metrics()
        self.client.set_terminated(self.parent_run_id, status=status)

    def _mark_best(self, number: int, value: float) -> None:
        """Tag trial ``number`` as the best (and untag the one before), and link it from the
        search run's tags and description."""
        run_id = self._trial_runs.get(number)
        if self.parent_run_id is None or run_id is None:
            return
        previous = self._best[1] if self._best else None
        self._best = (value, number)
        if previous is not None and previous != number and previous in self._trial_runs:
            self.client.delete_tag(self._trial_runs[previous], "nas.best")
        self.client.set_tag(run_id, "nas.best", "true")
        link = mlflow_view.run_path(self.experiment_id, run_id)
        text = f"Best trial: [trial-{number:04d}]({link}), val_acc {value:.4f}"
        tags = {"nas.best_trial": str(number), "nas.best_run_id": run_id,
                "mlflow.note.content": text}  # fmt: skip
        self.client.log_batch(self.parent_run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def _mark_front(self, records: list[Any]) -> None:
        """With several objectives, tag the trial runs of the Pareto front ``nas.pareto``
        (and untag those a resumed search's front left), so that MLflow's search
        ``tags.`nas.pareto` = 'true'`` lists what the leaderboard marks."""
        if not any(r.values and len(r.values) > 1 for r in records):
            return
        front = {r.trial for r in records if r.pareto}
        for number in self._pareto - front:
            if number in self._trial_runs:
                self.client.delete_tag(self._trial_runs[number], PARETO_TAG)
        for number in front - self._pareto:
            if number in self._trial_runs:
                self.client.set_tag(self._trial_runs[number], PARETO_TAG, "true")
        self._pareto = front

    # -- trial runs ------------------------------------------------------------------------

    def _load_trial_runs(self) -> None:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self.parent_run_id}'",
            max_results=50000,
        )
        for r in runs:
            if "nas.trial" in r.data.tags:
                self._trial_runs[int(r.data.tags["nas.trial"])] = r.info.run_id
                if r.data.tags.get(PARETO_TAG) == "true":
                    self._pareto.add(int(r.data.tags["nas.trial"]))

    def trial_run(self, number: int, config: TrialConfig, ray_trial_id: str | None = None) -> str:
        """The run of Optuna trial ``number``; created with its params on first use."""
        if number in self._trial_runs:
            run_id = self._trial_runs[number]
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, "nas.status", TrialStatus.RUNNING.value)
            if number not in self._last_step:  # reopened by a later driver
                history = self.client.get_metric_history(run_id, VAL_ACC)
                self._last_step[number] = max((m.step for m in history), default=-1)
            return run_id
        tags = {
            "mlflow.parentRunId": self.parent_run_id or "",
            "nas.role": "trial",
            "nas.study": self.study,
            "nas.trial": str(number),
            "nas.spec_id": config.spec_id,
            "nas.status": TrialStatus.RUNNING.value,
        }
        if ray_trial_id:
            tags["nas.ray_trial_id"] = ray_trial_id
        if config.warm_start:
            tags["nas.warm_start"] = config.warm_start
        run = self.client.create_run(self.experiment_id, run_name=f"trial-{number:04d}", tags=tags)
        run_id = run.info.run_id
        self._trial_runs[number] = run_id
        constants = [
            Metric(PARAMS, float(config.params), _now_ms(), 0),
            Metric(MACS, float(config.macs), _now_ms(), 0),
        ]
        log_params(self.client, run_id, trial_params(config), constants)
        spec = config.spec
        self.client.log_dict(run_id, spec, "spec.json")
        if spec and self._num_classes:
            self.client.log_text(run_id, _arch_summary(spec, self._num_classes), "arch_summary.txt")
        self._log_dataset(run_id)
        return run_id

    def log_epoch(self, number: int, result: dict[str, Any]) -> None:
        """One log_batch per report with the per-step metrics (:data:`STEP_METRICS`) at the
        step of its fidelity (training samples seen), and, when they change, the node that ran
        it and the worker's note (a refused checkpoint). The report is kept for the trial's
        final metrics (:meth:`end_trial`)."""
        run_id = self._trial_runs.get(number)
        if run_id is None:
            return
        self._keep_result(number, result)
        step = int(result.get(SAMPLES, result.get("training_iteration", 0)))
        now = _now_ms()
        # A trial Ray retried from an earlier checkpoint (or from the start) reports points
        # it reported before: each step is logged once, the first time.
        fresh = (
            step > self._last_step.get(number, -1)
            or result.get(STATUS) != TrialStatus.RUNNING.value
        )
        metrics = [
            Metric(k, float(v), now, step)
            for k, v in result.items()
            if fresh and k in STEP_METRICS and isinstance(v, int | float) and v == v
        ]
        if fresh:
            self._last_step[number] = max(step, self._last_step.get(number, -1))
        tags = []
        for key, tag in (("node_ip", "nas.node"), ("hostname", "nas.host"), ("note", "nas.note")):
            value = result.get(key)
            if value and self._tags.get((number, tag)) != value:
                self._tags[(number, tag)] = value
                tags.append(RunTag(tag, str(value)[:5000]))
        if metrics or tags:
            self.client.log_batch(run_id, metrics=metrics, tags=tags)

    def _keep_result(self, number: int, result: dict[str, Any]) -> None:
        kept = self._last_result.setdefault(number, {})
        peak = max(float(result.get(PEAK_MEMORY_MB) or 0.0), kept.get(PEAK_MEMORY_MB, 0.0))
        kept.update({k: v for k, v in result.items() if isinstance(v, int | float | str)})
        if peak:
            kept[PEAK_MEMORY_MB] = peak

    def end_trial(
        self,
        number: int,
        status: TrialStatus,
        reason: str | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Close a trial run with the status both stores share, its final metrics (from its
        last report) and its description; then the search run's best-so-far."""
        run_id = self._trial_runs.get(number)
        if run_id is None:
            return
        result = self._last_result.pop(number, {})
        self._last_step.pop(number, None)  # what an ended trial leaves is only its run id
        for key in [k for k in self._tags if k[0] == number]:
            del self._tags[key]
        status = TrialStatus.parse(status) or status
        tags = [
            RunTag("nas.status", str(status)),
            RunTag("mlflow.note.content", description(status, result, reason)[:5000]),
        ]
        if reason:
            tags.append(RunTag("nas.reason", reason[:5000]))
        for k, v in (extra or {}).items():
            if k in _TEXT_ARTIFACTS:  # too long for a tag
                self.client.log_text(run_id, str(v), _TEXT_ARTIFACTS[k])
            else:
                tags.append(RunTag(f"nas.{k}", str(v)))
        final = [  # at step 0: single values, which MLflow's charts draw as bars
            Metric(name, float(result[key]), _now_ms(), 0)
            for key, name in FINAL_METRICS.items()
            if isinstance(result.get(key), int | float) and result[key] == result[key]
        ]
        self.client.log_batch(run_id, metrics=final, tags=tags)
        self.client.set_terminated(run_id, status=row(status).mlflow)
        self._trial_ended(number, status, result.get(VAL_ACC))

    def log_repeat(self, number: int, value: float) -> None:
        """The trial's validation accuracy trained again with another seed
        (:mod:`nas.driver.repeat_best`): the ``val_acc_repeat`` metric of its run."""
        run_id = self._trial_runs.get(number)
        if run_id is not None:
            metric = Metric(f"{VAL_ACC}_repeat", float(value), _now_ms(), 0)
            self.client.log_batch(run_id, metrics=[metric])

    def _trial_ended(self, number: int, status: TrialStatus, value: Any) -> None:
        """The search run's optimisation history: ``best_val_acc`` after every trial."""
        if self.parent_run_id is None:
            return
        self._ended += 1
        done = status in (TrialStatus.COMPLETED, TrialStatus.REUSED)
        if done and isinstance(value, int | float) and value == value:
            if self._best is None or value > self._best[0]:
                self._mark_best(number, float(value))
        if self._best is not None:
            self.client.log_batch(
                self.parent_run_id,
                metrics=[Metric("best_val_acc", self._best[0], _now_ms(), self._ended)],
            )
        if self.plots is not None:
            self.plots.trial_ended()

    def reconcile(self, records: list[Any]) -> int:
        """Make MLflow agree with Optuna (the source of truth) on every finished trial of
        ``records`` (:class:`nas.study.records.TrialRecord`): a driver killed between its writes to
        the two stores leaves them apart, and the next run that ends mends it. Returns how
        many runs it changed."""
        changed = 0
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self.parent_run_id}'",
            max_results=50000,
        )
        by_number = {int(r.data.tags["nas.trial"]): r for r in runs if "nas.trial" in r.data.tags}
        for record in records:
            status = TrialStatus.parse(record.status)
            if status is None or status == TrialStatus.RUNNING:
                continue
            run = by_number.get(record.trial)
            if run is not None and run.data.tags.get("nas.status") == status.value:
                continue
            if run is None:
                config = TrialConfig(
                    spec=record.spec or {},
                    train=record.train or {},
                    spec_id=record.spec_id or "",
                    params=record.params or 0,
                    macs=record.macs or 0,
                    trial_number=record.trial,
                )
                self.trial_run(record.trial, config)
            self.end_trial(record.trial, status, record.reason)
            changed += 1
        return changed

    def mark_unfinished(self, reason: str) -> int:
        """Runs of this search still RUNNING (budget spent, Ctrl-C) end ``stopped``, with
        ``reason``; a resumed trial reopens its run."""
        n = 0
        for number, run_id in self._trial_runs.items():
            if self.client.get_run(run_id).info.status == "RUNNING":
                self.end_trial(number, TrialStatus.STOPPED, reason)
                n += 1
        return n


#: Diagnostics of a failed trial, kept as text artifacts of its run.
_TEXT_ARTIFACTS = {"traceback": "traceback.txt", "log_tail": "worker_log_tail.txt"}

#: Logged at every report, at its step (training samples seen).
STEP_METRICS = frozenset({VAL_ACC, VAL_LOSS, TRAIN_LOSS, LR, VAL_ACC_STD, IMAGES_PER_S})
#: Logged once when a trial ends, from its last report: report key -> metric name.
FINAL_METRICS = {
    SAMPLES: SAMPLES,
    EPOCH: "epochs",
    FOLDS: FOLDS,  # val_acc is the mean over this many folds (small data)
    LATENCY_MS_B1: LATENCY_MS_B1,
    LATENCY_MS_B64: LATENCY_MS_B64,
    PEAK_MEMORY_MB: PEAK_MEMORY_MB,
}


def _arch_summary(spec: dict[str, Any], num_classes: int) -> str:
    """The ``nas arch summary`` table of a trial's spec (its reason, if it cannot be drawn)."""
    from nas.core.arch_summary import spec_summary

    try:
        return spec_summary(spec, num_classes)
    except Exception as exc:  # noqa: BLE001 (a summary never fails a trial's run)
        return f"no summary: {exc}"


def _csv(rows: list[dict[str, Any]]) -> str:
    """The leaderboard rows as CSV (lists as JSON text)."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()})
    return out.getvalue()


def _now_ms() -> int:
    return int(time.time() * 1000)
