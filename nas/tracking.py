"""MLflow tracking of a search: one parent run per search, one nested run per trial.

Everything goes through :class:`mlflow.tracking.MlflowClient` from the driver process
(workers never import MLflow). Runs are found again by tags, never by in-memory state, so a
resumed search keeps writing into the runs it started, and ``nas leaderboard`` / retrain can
find them.

Tags: ``nas.role`` (search | trial | retrain), ``nas.study``, ``nas.trial`` (Optuna trial
number), ``nas.ray_trial_id``, ``nas.status`` (see :mod:`nas.trial_status`), ``nas.reason``,
``nas.spec_id``; ``mlflow.parentRunId`` nests the trials under the search run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from nas.trial_status import STATES

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


class SearchTracker:
    """The MLflow side of one study: its experiment, its parent run, its trial runs."""

    def __init__(self, tracking_uri: str, study: str, artifact_root: Path | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.study = study
        self.client = MlflowClient(tracking_uri)
        exp = self.client.get_experiment_by_name(study)
        if exp is None:
            location = artifact_root.resolve().as_uri() if artifact_root else None
            self.experiment_id = self.client.create_experiment(study, artifact_location=location)
        else:
            self.experiment_id = exp.experiment_id
        self.parent_run_id: str | None = None
        self._trial_runs: dict[int, str] = {}

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
        params = [Param(k, v[:PARAM_LIMIT]) for k, v in flatten("", config, {}).items()]
        self.client.log_batch(self.parent_run_id, params=params)
        self.client.log_dict(self.parent_run_id, config, "search_config.json")
        return self.parent_run_id

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
            return run_id
        tags = {
            "mlflow.parentRunId": self.parent_run_id or "",
            "nas.role": "trial",
            "nas.study": self.study,
            "nas.trial": str(number),
            "nas.spec_id": str(config.get("spec_id", "")),
            "nas.status": "running",
        }
        if ray_trial_id:
            tags["nas.ray_trial_id"] = ray_trial_id
        run = self.client.create_run(self.experiment_id, run_name=f"trial-{number:04d}", tags=tags)
        run_id = run.info.run_id
        self._trial_runs[number] = run_id
        values: dict[str, str] = {}
        flatten("arch", _summarise_spec(config.get("spec", {})), values)
        flatten("train", config.get("train", {}), values)
        flatten("cost", config.get("cost", {}), values)
        values["spec_id"] = str(config.get("spec_id", ""))
        params = [Param(k, v[:PARAM_LIMIT]) for k, v in values.items()]
        for i in range(0, len(params), 100):  # log_batch takes at most 100 params a call
            self.client.log_batch(run_id, params=params[i : i + 100])
        self.client.log_dict(run_id, config.get("spec", {}), "spec.json")
        return run_id

    def log_epoch(self, number: int, result: dict[str, Any]) -> None:
        """One log_batch per epoch with every numeric metric of the result."""
        run_id = self._trial_runs.get(number)
        if run_id is None:
            return
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        now = _now_ms()
        metrics = [
            Metric(k, float(v), now, step)
            for k, v in result.items()
            if k in _EPOCH_METRICS and isinstance(v, int | float) and v == v
        ]
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)

    def end_trial(
        self, number: int, status: str, reason: str | None, extra: dict[str, Any] | None = None
    ) -> None:
        """Close a trial run with the status both stores share."""
        run_id = self._trial_runs.get(number)
        if run_id is None:
            return
        tags = [RunTag("nas.status", status)]
        if reason:
            tags.append(RunTag("nas.reason", reason[:5000]))
        for k, v in (extra or {}).items():
            tags.append(RunTag(f"nas.{k}", str(v)))
        self.client.log_batch(run_id, tags=tags)
        self.client.set_terminated(run_id, status=STATES[status][1])

    def mark_unfinished(self, status: str = "interrupted") -> int:
        """Runs of this search still RUNNING (Ctrl-C, crash) become KILLED, tagged ``status``."""
        n = 0
        for run_id in self._trial_runs.values():
            run = self.client.get_run(run_id)
            if run.info.status == "RUNNING":
                self.client.set_tag(run_id, "nas.status", status)
                self.client.set_terminated(run_id, status="KILLED")
                n += 1
        return n

    def record_short_circuit(
        self,
        number: int,
        config: dict[str, Any],
        status: str,
        reason: str,
        metrics: dict[str, float] | None,
    ) -> None:
        """A trial that ended in the searcher (rejected, duplicate): a run all the same."""
        self.trial_run(number, config)
        if metrics:
            self.log_epoch(number, {**metrics})
        self.end_trial(number, status, reason)


_EPOCH_METRICS = {
    "val_acc",
    "val_loss",
    "train_loss",
    "epoch",
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
