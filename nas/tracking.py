"""MLflow tracking of a search: one parent run per search, one nested run per trial.

Everything goes through :class:`mlflow.tracking.MlflowClient` from the driver process
(workers never import MLflow). Runs are found again by tags, never by in-memory state, so a
resumed search keeps writing into the runs it started, and ``nas leaderboard`` / retrain can
find them.

Tags: ``nas.role`` (search | trial | retrain), ``nas.study``, ``nas.trial`` (Optuna trial
number), ``nas.ray_trial_id``, ``nas.node`` (the Ray node's IP that ran it last),
``nas.note`` (what the worker had to say, e.g. a refused checkpoint), ``nas.recoveries`` (times its worker died and Ray resumed it from its checkpoint),
``nas.status`` (the status table, :mod:`nas.status`),
``nas.reason``, ``nas.spec_id``; ``mlflow.parentRunId`` nests the trials under the search run.

:class:`SearchTracker` subscribes to the search's events (:mod:`nas.events`): it imports
neither Ray nor any global.
"""

from __future__ import annotations

import json
import time
from functools import singledispatchmethod
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag

from nas import mlflow_store
from nas.events import (
    EpochReported,
    TrialEnded,
    TrialNeverRan,
    TrialRecovered,
    TrialReused,
    TrialStarted,
)
from nas.spool import Spool
from nas.status import TrialStatus, row

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


def log_params(client: Any, run_id: str, values: dict[str, str]) -> None:
    """Log string params, cut to MLflow's value limit, 100 per call (its batch limit)."""
    params = [Param(k, v[:PARAM_LIMIT]) for k, v in values.items()]
    for i in range(0, len(params), 100):
        client.log_batch(run_id, params=params[i : i + 100])


class SearchTracker:
    """The MLflow side of one study: its experiment, its parent run, its trial runs."""

    def __init__(self, tracking_uri: str, study: str) -> None:
        self.tracking_uri = tracking_uri
        self.study = study
        self.client = mlflow_store.client(tracking_uri)
        self.experiment_id = mlflow_store.experiment_id(self.client, study, tracking_uri)
        self.parent_run_id: str | None = None
        self._trial_runs: dict[int, str] = {}
        self._tags: dict[tuple[int, str], str] = {}  # the last node / note tagged per trial
        self._last_step: dict[int, int] = {}  # the last metric step logged per trial
        self.spool: Spool | None = None

    def check_write_access(self) -> None:
        """Write something harmless (the experiment's tags, also on one an older version
        made), so that a user who may only read fails here, before the search writes."""
        for key, value in {**mlflow_store.EXPERIMENT_TAGS, "nas.study": self.study}.items():
            self.client.set_experiment_tag(self.experiment_id, key, value)

    # -- events ----------------------------------------------------------------------------

    def use_spool(self, path: Path) -> int:
        """Keep events the server cannot take in ``path`` (:mod:`nas.spool`) and send what an
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
            self.log_epoch(event.number, {"val_acc": event.values[0]})
        self.end_trial(event.number, event.status, event.reason)

    @record.register
    def _(self, event: TrialNeverRan) -> None:  # rejected, or cancelled by the budget
        self.trial_run(event.number, event.config)
        self.end_trial(event.number, event.status, event.reason)

    # -- the search run --------------------------------------------------------------------

    def start_search_run(self, config: dict[str, Any], resume: bool) -> str:
        """Create the search's parent run, or reopen it on ``--resume``."""
        if resume:
            runs = self.client.search_runs(
                [self.experiment_id],
                filter_string="tags.`nas.role` = 'search'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if runs:
                self.parent_run_id = runs[0].info.run_id
                self.client.update_run(self.parent_run_id, status="RUNNING")
                self._load_trial_runs()
                return self.parent_run_id
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{self.study}-search",
            tags={"nas.role": "search", "nas.study": self.study},
        )
        self.parent_run_id = run.info.run_id
        log_params(self.client, self.parent_run_id, flatten("", config, {}))
        self.client.log_dict(self.parent_run_id, config, "search_config.json")
        return self.parent_run_id

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
        self, status: str, summary: dict[str, float], leaderboard: list[dict[str, Any]] | None
    ) -> None:
        """Close the parent run with the search's summary metrics and the leaderboard."""
        if self.parent_run_id is None:
            return
        now = _now_ms()
        metrics = [Metric(k, float(v), now, 0) for k, v in summary.items() if v is not None]
        self.client.log_batch(self.parent_run_id, metrics=metrics)
        if leaderboard is not None:
            self.client.log_dict(self.parent_run_id, leaderboard, "leaderboard.json")
        self.client.set_terminated(self.parent_run_id, status=status)

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

    def trial_run(
        self, number: int, config: dict[str, Any], ray_trial_id: str | None = None
    ) -> str:
        """The run of Optuna trial ``number``; created with its params on first use."""
        if number in self._trial_runs:
            run_id = self._trial_runs[number]
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, "nas.status", TrialStatus.RUNNING.value)
            if number not in self._last_step:  # reopened by a later driver
                history = self.client.get_metric_history(run_id, "val_acc")
                self._last_step[number] = max((m.step for m in history), default=-1)
            return run_id
        tags = {
            "mlflow.parentRunId": self.parent_run_id or "",
            "nas.role": "trial",
            "nas.study": self.study,
            "nas.trial": str(number),
            "nas.spec_id": str(config.get("spec_id", "")),
            "nas.status": TrialStatus.RUNNING.value,
        }
        if ray_trial_id:
            tags["nas.ray_trial_id"] = ray_trial_id
        if config.get("warm_start"):
            tags["nas.warm_start"] = str(config["warm_start"])
        run = self.client.create_run(self.experiment_id, run_name=f"trial-{number:04d}", tags=tags)
        run_id = run.info.run_id
        self._trial_runs[number] = run_id
        values: dict[str, str] = {}
        flatten("arch", _summarise_spec(config.get("spec", {})), values)
        flatten("train", config.get("train", {}), values)
        flatten("cost", config.get("cost", {}), values)
        values["spec_id"] = str(config.get("spec_id", ""))
        log_params(self.client, run_id, values)
        self.client.log_dict(run_id, config.get("spec", {}), "spec.json")
        return run_id

    def log_epoch(self, number: int, result: dict[str, Any]) -> None:
        """One log_batch per report with every numeric metric of the result, at the step of
        its fidelity (training samples seen), and, when they change, the node that ran it and the
        worker's note (a refused checkpoint)."""
        run_id = self._trial_runs.get(number)
        if run_id is None:
            return
        step = int(result.get("samples", result.get("training_iteration", 0)))
        now = _now_ms()
        # A trial Ray retried from an earlier checkpoint (or from the start) reports points
        # it reported before: each step is logged once, the first time.
        fresh = step > self._last_step.get(number, -1) or result.get("status") != "running"
        metrics = [
            Metric(k, float(v), now, step)
            for k, v in result.items()
            if fresh and k in _EPOCH_METRICS and isinstance(v, int | float) and v == v
        ]
        if fresh:
            self._last_step[number] = max(step, self._last_step.get(number, -1))
        tags = []
        for key, tag in (("node_ip", "nas.node"), ("note", "nas.note")):
            value = result.get(key)
            if value and self._tags.get((number, tag)) != value:
                self._tags[(number, tag)] = value
                tags.append(RunTag(tag, str(value)[:5000]))
        if metrics or tags:
            self.client.log_batch(run_id, metrics=metrics, tags=tags)

    def end_trial(
        self,
        number: int,
        status: TrialStatus,
        reason: str | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Close a trial run with the status both stores share."""
        run_id = self._trial_runs.get(number)
        if run_id is None:
            return
        tags = [RunTag("nas.status", str(status))]
        if reason:
            tags.append(RunTag("nas.reason", reason[:5000]))
        for k, v in (extra or {}).items():
            if k in _TEXT_ARTIFACTS:  # too long for a tag
                self.client.log_text(run_id, str(v), _TEXT_ARTIFACTS[k])
            else:
                tags.append(RunTag(f"nas.{k}", str(v)))
        self.client.log_batch(run_id, tags=tags)
        self.client.set_terminated(run_id, status=row(status).mlflow)

    def reconcile(self, records: list[Any]) -> int:
        """Make MLflow agree with Optuna (the source of truth) on every finished trial of
        ``records`` (:class:`nas.results.TrialRecord`): a driver killed between its writes to
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
                cost = {"params": record.params or 0, "macs": record.macs or 0}
                config = {"spec": record.spec or {}, "train": record.train or {}}
                self.trial_run(record.trial, config | {"spec_id": record.spec_id, "cost": cost})
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

_EPOCH_METRICS = {
    "val_acc",
    "val_loss",
    "train_loss",
    "epoch",
    "samples",
    "val_acc_std",
    "folds",
    "images_per_s",
    "params",
    "macs",
    "latency_ms_b1",
    "latency_ms_b64",
    "time_this_iter_s",
}


def _summarise_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec without its bulky parts, for params (the full spec is the spec.json artifact)."""
    return {k: v for k, v in spec.items() if k not in ("stages", "stem")} | {
        "num_stages": len(spec.get("stages", [])),
        "blocks": ",".join(
            str(s.get("block", {}).get("type", "?")) for s in spec.get("stages", [])
        ),
        "stages": spec.get("stages", []),
    }


def _now_ms() -> int:
    return int(time.time() * 1000)
