"""Our Ray Tune searcher over Optuna's ask-and-tell interface.

It holds the :class:`optuna.Study` and the :class:`optuna.Trial` of every trial a worker is
training, through Optuna's public API only (``ask``, ``tell``, ``report``,
``set_user_attr``, ``get_trials``), so the warm start (``study.enqueue_trial``) and crash
recovery have the handles they need. Three things it knows about architectures:

1. Samples over ``--max-params`` / ``--max-macs`` (or that the catalog refuses) end as
   ``rejected`` in ``suggest`` and never reach a worker.
2. An architecture + training settings already evaluated in the study (same config key) is
   not trained again: the new trial ends ``reused`` with the earlier result.
3. A trial Ray finished is told to Optuna in the state the status table gives for how it
   ended (:mod:`nas.study.status_table`).

Rejections and reuses are events on the study's :class:`~nas.study.events.SearchState`, so MLflow
and the live view see them like any other trial.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from nas.driver.constraints import SoftLimits
from nas.driver.ray_adapters import active
from nas.study.events import (
    SearchState,
    TrialCancelled,
    TrialEnded,
    TrialLost,
    TrialRejected,
    TrialReused,
)
from nas.study.status_table import TrialStatus, classify, row
from workers.trial import (
    EPOCH,
    FOLDS,
    LATENCY_MS_B1,
    LATENCY_MS_B64,
    MACS,
    PARAMS,
    SAMPLES,
    STATUS,
    VAL_ACC,
    VAL_ACC_STD,
    TrialConfig,
)

logger = logging.getLogger(__name__)

MAX_REJECTIONS_PER_SUGGEST = 50
#: The index of evaluated configurations is read anew from the study after this many
#: configurations (another driver's trials); this driver's own are added as they end.
REINDEX_EVERY = 25
#: Version of the searcher's own checkpoint (JSON: it can run no code when read back).
STATE_VERSION = 1
#: What the checkpoint and Ray's pickle of the searcher keep: plain data only, never the
#: study, its storage (whose URL may hold a password) or the sampler.
_LIVE_HANDLES = ("study", "storage", "define_by_run", "trials", "evaluated", "unindexed")
#: User attributes copied from the result a trial ends with (result key -> attribute).
RESULT_ATTRS = {SAMPLES: SAMPLES, EPOCH: "epochs", VAL_ACC: VAL_ACC, VAL_ACC_STD: VAL_ACC_STD,
                FOLDS: FOLDS, LATENCY_MS_B1: LATENCY_MS_B1, LATENCY_MS_B64: LATENCY_MS_B64}  # fmt: skip


class NasSearcher(Searcher):
    """Optuna ask-and-tell behind Ray Tune's ``Searcher`` interface.

    Its checkpoint (``searcher-state-*.json`` beside Ray's experiment state) is versioned
    JSON, and Ray's pickle of the Tuner keeps only its plain data: whoever may write to a
    shared ``--checkpoint-uri`` cannot make the driver run code through it, and no store
    URL is written there. A restored searcher finds the live study, storage and sampler of
    the search running in this process through :func:`nas.driver.ray_adapters.active`."""

    CKPT_FILE_TMPL = "searcher-state-{}.json"
    constraints: tuple[str, ...] = ()  # a searcher saved before --constraint had none

    def __init__(
        self,
        define_by_run: Callable[[optuna.Trial], dict[str, Any]],
        *,
        study: optuna.Study,
        metrics: list[str],
        storage: optuna.storages.BaseStorage | None = None,
        constraints: tuple[str, ...] = (),
    ) -> None:
        modes = ["max" if d == optuna.study.StudyDirection.MAXIMIZE else "min"
                 for d in study.directions]  # fmt: skip
        # Ray checks every result for the searcher's metric; costs measured at a trial's end
        # (latency) are in its last result only, so Ray is told the first objective (the
        # accuracy, reported at every rung) and the searcher tells Optuna all of them.
        super().__init__(metric=metrics[0], mode=modes[0])
        self.define_by_run = define_by_run
        self.study = study
        self.storage = storage  # to reopen a restored trial's handle by its number
        self.study_name = study.study_name
        self.metrics = list(metrics)
        self.constraints = tuple(constraints)  # --constraint, :mod:`nas.driver.constraints`
        self.trials: dict[str, optuna.Trial] = {}  # Ray trial id -> the Optuna trial it trains
        self.reported: dict[str, int] = {}  # Ray trial id -> last samples reported to Optuna
        self.configs: dict[str, dict[str, Any]] = {}  # Ray trial id -> the config it was handed
        self.evaluated: dict[str, int] = {}  # config key -> a trial that evaluated it
        self.unindexed = REINDEX_EVERY  # configurations since the index was read

    def _state(self) -> SearchState | None:
        return active(self.study.study_name)

    # -- suggest ---------------------------------------------------------------------------

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        for _ in range(MAX_REJECTIONS_PER_SUGGEST):
            trial = self.study.ask()
            config = self.define_by_run(trial)
            typed = TrialConfig.from_dict(config)
            if typed.rejected:
                self._end_early(trial, TrialStatus.REJECTED, typed.rejected)
                self._emit(TrialRejected(trial.number, typed, typed.rejected))
                continue
            earlier = self._find_evaluated(typed.config_key, exclude=trial.number)
            if earlier is not None:
                self._reuse(trial, typed, earlier)
                continue
            self.trials[trial_id] = trial
            self.configs[trial_id] = config
            self._register(trial, typed)
            return config
        reason = (
            f"{MAX_REJECTIONS_PER_SUGGEST} samples in a row were rejected (over --max-params / "
            "--max-macs or the space's limits) or already evaluated: loosen the limits or "
            "widen the space"
        )
        logger.warning(reason)
        state = self._state()
        if state is not None:
            state.gave_up = reason
        return Searcher.FINISHED

    def _find_evaluated(self, key: str, exclude: int) -> optuna.trial.FrozenTrial | None:
        """A finished trial of the study that evaluated config ``key`` (not one the budget
        stopped), from an index of config keys: reading every finished trial of the study
        for every configuration cost the driver more with every trial."""
        self.unindexed += 1
        if self.unindexed > REINDEX_EVERY:
            self.unindexed = 0
            for t in self.study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
            ):
                attrs = t.user_attrs
                self._index(attrs.get("config_key"), attrs.get("status"), t.number)
        number = self.evaluated.get(key)
        if number is None or number == exclude:
            return None
        return self.study.get_trials(deepcopy=False)[number]  # a trial's number is its index

    def _index(self, key: str | None, status: Any, number: int) -> None:
        if key and TrialStatus.parse(status) != TrialStatus.STOPPED:
            self.evaluated.setdefault(key, number)

    def _reuse(
        self, trial: optuna.Trial, config: TrialConfig, earlier: optuna.trial.FrozenTrial
    ) -> None:
        for key in RESULT_ATTRS.values():
            if key in earlier.user_attrs:
                trial.set_user_attr(key, earlier.user_attrs[key])
        trial.set_user_attr("reused_from", earlier.number)
        for cost, excess in earlier.constraints.items():
            trial.set_constraint(cost, excess)
        reason = f"same architecture and settings as trial {earlier.number}"
        if earlier.state == TrialState.PRUNED:
            if len(self.metrics) == 1:
                for step, value in earlier.intermediate_values.items():
                    trial.report(value, step)
            status, values = TrialStatus.PRUNED, None
        else:
            status, values = TrialStatus.REUSED, list(earlier.values)
        self._end_early(trial, status, reason, values)
        self._emit(TrialReused(trial.number, config, earlier.number, status, values, reason))

    def _end_early(
        self,
        trial: optuna.Trial,
        status: TrialStatus,
        reason: str,
        values: list[float] | None = None,
    ) -> None:
        trial.set_user_attr("status", status.value)
        trial.set_user_attr("reason", reason)
        state = TrialState[row(status).optuna]
        self.study.tell(trial, values if state == TrialState.COMPLETE else None, state=state)

    def _emit(self, event: Any) -> None:
        state = self._state()
        if state is not None:
            state.emit(event)

    def _register(self, trial: optuna.Trial, config: TrialConfig) -> None:
        state = self._state()
        if state is not None:
            state.open_trials[trial.number] = trial
            state.open_configs[trial.number] = config

    # -- results ---------------------------------------------------------------------------

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        trial = self.trials.get(trial_id)
        if trial is not None:
            self._report(trial_id, trial, result)

    def _report(self, trial_id: str, trial: optuna.Trial, result: dict[str, Any]) -> None:
        """Report a training result as an intermediate value at its fidelity (samples)."""
        status = TrialStatus.parse(result.get(STATUS))
        if len(self.metrics) > 1 or self.metric not in result:
            return
        step = int(result.get(SAMPLES, 0))
        if status in (TrialStatus.RUNNING, TrialStatus.COMPLETED) and step > self.reported.get(
            trial_id, 0
        ):
            trial.report(float(result[self.metric]), step)
            self.reported[trial_id] = step

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        trial = self.trials.pop(trial_id, None)
        if trial is None:
            return
        state = self._state()
        spent = state.stopped_why if state is not None else None
        chance = state.chance if state is not None else 0.0
        status, reason = classify(result, error, spent, chance)
        result = result or {}
        self._report(trial_id, trial, result)  # the result that ended it, if not reported yet
        trial.set_user_attr("status", status.value)
        if reason:
            trial.set_user_attr("reason", reason)
        for key, attr in RESULT_ATTRS.items():
            if result.get(key) is not None:
                trial.set_user_attr(attr, result[key])
        for cost, excess in SoftLimits(self.constraints).excess(result).items():
            trial.set_constraint(cost, excess)
        optuna_state = TrialState[row(status).optuna]
        values = None
        if optuna_state == TrialState.COMPLETE:
            values = [float(result[m]) for m in self.metrics]
        try:
            self.study.tell(trial, values, state=optuna_state)
        except ValueError as exc:  # a value Optuna refuses (NaN) must not end the search
            logger.warning("optuna refused trial %s: %s", trial.number, exc)
            self.study.tell(trial, None, state=TrialState.FAIL)
            optuna_state = TrialState.FAIL
        if optuna_state in (TrialState.COMPLETE, TrialState.PRUNED):
            self._index(self.configs.get(trial_id, {}).get("config_key"), status, trial.number)
        if state is not None:
            state.open_trials.pop(trial.number, None)
            state.open_configs.pop(trial.number, None)
        self.reported.pop(trial_id, None)
        self.configs.pop(trial_id, None)

    # -- Tuner.restore ---------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """Plain data for Ray's pickle of the Tuner (``tuner.pkl``)."""
        state = {k: v for k, v in self.__dict__.items() if k not in _LIVE_HANDLES}
        state["trial_numbers"] = {rid: t.number for rid, t in self.trials.items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        numbers = state.pop("trial_numbers", {})
        self.__dict__.update(state)
        live = active(self.study_name)
        self.study = getattr(live, "study", None)
        self.storage = getattr(live, "storage", None)
        self.define_by_run = getattr(live, "define_by_run", None)
        self.trials = self._reopen(numbers) if self.study is not None else {}
        self.evaluated, self.unindexed = {}, REINDEX_EVERY  # read anew at the next config

    def save(self, checkpoint_path: str) -> None:
        """Write the trials in flight as versioned JSON (Ray calls this to checkpoint)."""
        payload = {
            "version": STATE_VERSION,
            "study": self.study_name,
            "trials": {rid: t.number for rid, t in self.trials.items()},
            "reported": self.reported,
            "configs": self.configs,
        }
        with open(checkpoint_path, "w", encoding="utf-8") as f:
            json.dump(payload, f)

    def restore(self, checkpoint_path: str) -> None:
        """Read :meth:`save`'s JSON back; trials whose Optuna trial ended since (a later
        driver closed them) are dropped and marked stale. A file that is not this format
        raises ``ValueError`` naming it, and nothing in it is executed."""
        saved = read_state(checkpoint_path)
        self.reported = {str(k): int(v) for k, v in saved["reported"].items()}
        self.configs = dict(saved["configs"])
        numbers = {str(k): int(v) for k, v in saved["trials"].items()}
        ended = {t.number for t in self.study.get_trials(deepcopy=False) if t.state.is_finished()}
        state = self._state()
        for trial_id, number in list(numbers.items()):
            if number in ended:  # the study moved on after Ray saved this checkpoint
                del numbers[trial_id]
                self.reported.pop(trial_id, None)
                self.configs.pop(trial_id, None)
                if state is not None:
                    state.stale_trials.add(trial_id)
        self.trials = self._reopen(numbers)
        for trial_id, trial in self.trials.items():
            self._register(trial, self.configs.get(trial_id, {}))

    def _reopen(self, numbers: dict[str, int]) -> dict[str, optuna.Trial]:
        """Handles of the study's trials ``numbers`` (Ray trial id -> Optuna number)."""
        if not numbers:
            return {}
        if self.storage is None:
            raise RuntimeError("a searcher restores trials only with the study's storage")
        study_id = self.storage.get_study_id_from_name(self.study_name)
        return {
            rid: optuna.Trial(
                self.study, self.storage.get_trial_id_from_study_id_trial_number(study_id, n)
            )
            for rid, n in numbers.items()
        }


def read_state(path: str) -> dict[str, Any]:
    """The searcher checkpoint at ``path``, checked: JSON of :data:`STATE_VERSION` with
    the fields :meth:`NasSearcher.save` writes; ``ValueError`` naming the file otherwise
    (a pickle, a damaged file, a newer version)."""
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a nas searcher state (not JSON: {exc})") from None
    if not isinstance(saved, dict) or saved.get("version") != STATE_VERSION:
        version = saved.get("version") if isinstance(saved, dict) else None
        raise ValueError(
            f"{path}: searcher state version {version!r}, this nas reads version {STATE_VERSION}"
        )
    fields = {"trials": dict, "reported": dict, "configs": dict}
    for key, kind in fields.items():
        if not isinstance(saved.get(key), kind):
            raise ValueError(f"{path}: searcher state without a {key!r} object")
    return saved


def close_open_trials(state: SearchState, study: optuna.Study) -> None:
    """At the end of a search, trials still running (Ray stopped them when the budget ran
    out, without telling the searcher) end ``stopped`` (PRUNED) with the samples trained and
    the accuracy they reached; one Ray was handed but never started is a
    :class:`~nas.study.events.TrialCancelled` event, so MLflow records it too. A RUNNING trial no
    searcher of this driver holds (an earlier driver died) ends FAIL; the leaderboard reads
    that as ``driver_lost``."""
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial = state.open_trials.pop(frozen.number, None)
        config = state.open_configs.pop(frozen.number, None) or _config_of(frozen)
        if trial is None:
            reason = "its driver stopped (killed, or a full disk) before Ray saved the trial"
            study.tell(frozen.number, state=TrialState.FAIL)
            state.emit(TrialLost(frozen.number, _config_of(frozen), reason))
            continue
        started = frozen.number in state.started_numbers
        reason = (
            "the budget ran out" if started else "the budget ran out before a worker started it"
        )
        trial.set_user_attr("status", TrialStatus.STOPPED.value)
        trial.set_user_attr("reason", reason)
        if frozen.intermediate_values:
            last = max(frozen.intermediate_values)
            trial.set_user_attr(SAMPLES, last)
            trial.set_user_attr(VAL_ACC, frozen.intermediate_values[last])
        study.tell(trial, state=TrialState.PRUNED)
        if started:  # Ray stops running trials at the end without calling back
            state.emit(TrialEnded(frozen.number, TrialStatus.STOPPED, reason))
        else:
            state.emit(TrialCancelled(frozen.number, config, reason))


def _config_of(frozen: optuna.trial.FrozenTrial) -> TrialConfig:
    """What MLflow records of a trial's config, from the user attributes the sampler set
    (:mod:`nas.driver.define_by_run`): for a trial whose driver died before Ray kept its config."""
    attrs = frozen.user_attrs
    return TrialConfig(
        spec=attrs.get("spec", {}),
        train=attrs.get("train", {}),
        spec_id=attrs.get("spec_id", ""),
        params=int(attrs.get(PARAMS, 0)),
        macs=int(attrs.get(MACS, 0)),
        warm_start=attrs.get("warm_start"),
        trial_number=frozen.number,
    )
