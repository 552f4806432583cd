"""Ray Tune's ``OptunaSearch``, taught three things about architectures.

1. Specs over ``--max-params`` / ``--max-macs`` are rejected in ``suggest`` (the Optuna trial
   is told FAIL with the reason) and never reach a worker.
2. An architecture + training settings already evaluated in the study (same config key) is
   not trained again: the new Optuna trial is told the earlier result.
3. A finished trial is told to Optuna with the state that matches how it ended
   (:mod:`nas.trial_status`): COMPLETE, PRUNED (scheduler / budget) or FAIL.

Rejected and duplicate trials are handed to the current :class:`~nas.runtime.SearchRuntime`
so that MLflow records them too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from nas.runtime import current
from nas.trial_status import STATES, classify

logger = logging.getLogger(__name__)

MAX_REJECTIONS_PER_SUGGEST = 50


class NasSearcher(OptunaSearch):
    """OptunaSearch with limit rejection, duplicate recognition and honest end states."""

    def __init__(
        self,
        space: Callable[[Any], dict[str, Any]],
        *,
        metric: str | list[str],
        mode: str | list[str],
        sampler: optuna.samplers.BaseSampler,
        storage: optuna.storages.BaseStorage,
        study_name: str,
        max_epochs: int,
    ) -> None:
        super().__init__(
            space=space,
            metric=metric,
            mode=mode,
            sampler=sampler,
            storage=storage,
            study_name=study_name,
        )
        self._max_epochs = max_epochs

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

    # -- suggest ---------------------------------------------------------------------------

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        for _ in range(MAX_REJECTIONS_PER_SUGGEST):
            config = super().suggest(trial_id)
            if config is None:
                return None
            ot_trial = self._ot_trials[trial_id]
            if config.get("rejected"):
                self._short_circuit(trial_id, ot_trial, config, "rejected", config["rejected"])
                continue
            earlier = self._find_evaluated(config["config_key"], exclude=ot_trial.number)
            if earlier is not None:
                self._reuse(trial_id, ot_trial, config, earlier)
                continue
            return config
        reason = (
            f"{MAX_REJECTIONS_PER_SUGGEST} samples in a row were rejected "
            "(over --max-params / --max-macs or the space's limits): loosen them"
        )
        logger.warning(reason)
        rt = current()
        if rt is not None:
            rt.gave_up = reason
        return Searcher.FINISHED

    def _find_evaluated(self, key: str, exclude: int) -> optuna.trial.FrozenTrial | None:
        for t in self._ot_study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
        ):
            if (
                t.number != exclude
                and t.user_attrs.get("config_key") == key
                and t.user_attrs.get("status") != "stopped"
            ):
                return t
        return None

    def _reuse(
        self,
        trial_id: str,
        ot_trial: Any,
        config: dict[str, Any],
        earlier: optuna.trial.FrozenTrial,
    ) -> None:
        for key in ("epochs", "val_acc", "latency_ms_b1", "latency_ms_b64"):
            if key in earlier.user_attrs:
                ot_trial.set_user_attr(key, earlier.user_attrs[key])
        ot_trial.set_user_attr("duplicate_of", earlier.number)
        reason = f"same architecture and settings as trial {earlier.number}"
        if earlier.state == TrialState.PRUNED:
            for step, value in earlier.intermediate_values.items():
                ot_trial.report(value, step)
            self._short_circuit(
                trial_id, ot_trial, config, "pruned", reason, state=TrialState.PRUNED
            )
        else:
            self._short_circuit(
                trial_id, ot_trial, config, "duplicate", reason, values=earlier.values
            )

    def _short_circuit(
        self,
        trial_id: str,
        ot_trial: Any,
        config: dict[str, Any],
        status: str,
        reason: str,
        values: list[float] | None = None,
        state: TrialState | None = None,
    ) -> None:
        ot_trial.set_user_attr("status", status)
        ot_trial.set_user_attr("reason", reason)
        state = state or TrialState[STATES[status][0]]
        self._ot_study.tell(ot_trial, values if state == TrialState.COMPLETE else None, state=state)
        del self._ot_trials[trial_id]
        rt = current()
        if rt is not None:
            rt.on_short_circuit(
                ot_trial.number, config, status, reason, list(values) if values else None
            )

    # -- results ---------------------------------------------------------------------------

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if "val_acc" in result and result.get("status") in ("running", "completed"):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        status, reason = classify(result, error, self._max_epochs)
        result = result or {}
        ot_trial.set_user_attr("status", status)
        if reason:
            ot_trial.set_user_attr("reason", reason)
        for key in ("epoch", "val_acc", "latency_ms_b1", "latency_ms_b64"):
            if key in result and result[key] is not None:
                ot_trial.set_user_attr("epochs" if key == "epoch" else key, result[key])
        state = TrialState[STATES[status][0]]
        values = None
        if state == TrialState.COMPLETE:
            metrics = self.metric if isinstance(self.metric, list) else [self.metric]
            values = [float(result[m]) for m in metrics]
        try:
            self._ot_study.tell(ot_trial, values, state=state)
        except Exception as exc:  # a value Optuna refuses (NaN) must not end the search
            logger.warning("optuna refused trial %s: %s", ot_trial.number, exc)
            self._ot_study.tell(ot_trial, None, state=TrialState.FAIL)
        self._completed_trials.add(trial_id)
