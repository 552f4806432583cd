"""A selection that resists noise: the best few configurations evaluated again.

One training run's validation accuracy is one draw of a noisy measurement (initial weights,
data order, the validation split), and the best of many such draws is the luckiest as much
as the best (Yang et al. 2020, "NAS evaluation is frustratingly hard"). Before a search hands
over its winner, the :data:`REPEATS` best completed trials are trained again at full fidelity
with another seed (and, on small data, another split into folds), as Ray tasks holding one
trial's resources each. The second value is kept in the study (its user attribute
:data:`nas.study.records.REPEATS_ATTR`) and on each trial's MLflow run (``val_acc_repeat``);
the leaderboard shows both and ranks the repeated trials first, by their mean, so
``nas retrain --best`` takes that winner.

It runs inside the budget: a wall-clock search keeps back the time the repeats take
(:func:`reserve_seconds`, at most :data:`MAX_SHARE` of the budget), and stops starting
trials that much earlier.
"""

from __future__ import annotations

import logging
import math
from typing import IO, Any

import optuna
import ray

from nas.core.config import SearchConfig
from nas.driver.plan import TRIAL_OVERHEAD_S, Plan
from nas.study.records import REPEATS_ATTR, trial_records
from workers.repeat import evaluate_again
from workers.trial import DatasetRef, TrialConfig

logger = logging.getLogger(__name__)

REPEATS = 3  # the best trials evaluated again
MAX_SHARE = 0.25  # of a wall-clock budget kept back for the repeats, at most


def _full_trial_seconds(plan: Plan) -> float:
    """One trial at the plan's full fidelity, on one worker."""
    return plan.max_samples * (plan.seconds_per_sample or 0.0) * plan.folds + TRIAL_OVERHEAD_S


def repeats_for(cfg: SearchConfig, plan: Plan, workers: int) -> int:
    """How many of the best trials the budget lets the search evaluate again (0: none)."""
    if cfg.multi_objective or cfg.budget.kind != "wall" or not plan.seconds_per_sample:
        return 0
    rounds = math.floor(MAX_SHARE * cfg.budget.amount / _full_trial_seconds(plan))
    return min(REPEATS, rounds * max(1, workers))


def reserve_seconds(cfg: SearchConfig, plan: Plan, workers: int) -> float:
    """The wall-clock seconds the repeats take on ``workers`` workers."""
    n = repeats_for(cfg, plan, workers)
    return math.ceil(n / max(1, workers)) * _full_trial_seconds(plan) if n else 0.0


def repeat_best(
    cfg: SearchConfig,
    study: optuna.Study,
    plan: Plan,
    data: Any,
    workers: int,
    tracker: Any,
    stream: IO[str],
) -> dict[int, float]:
    """Evaluate the best completed full-fidelity trials again (those not repeated yet);
    record and print what came out. Returns trial number -> the second accuracy."""
    n = repeats_for(cfg, plan, workers)
    done = {int(k): v for k, v in (study.user_attrs.get(REPEATS_ATTR) or {}).items()}
    top = [
        r
        for r in trial_records(study)
        if r.status == "completed" and r.spec and (r.samples or 0) >= plan.max_samples
    ][:n]
    todo = [r for r in top if r.trial not in done]
    if not todo:
        return {}
    task = ray.remote(evaluate_again).options(
        num_cpus=cfg.cpus_per_trial, num_gpus=cfg.gpus_per_trial, max_retries=1
    )
    data_ref = ray.put(data)
    refs = {}
    for r in todo:
        config = TrialConfig(
            spec=r.spec or {},
            train=r.train or {},
            max_samples=plan.max_samples,
            folds=plan.folds,
            dataset=DatasetRef(cfg.data.name, cfg.data.data_dir, cfg.val_fraction, cfg.seed),
            threads=max(1, int(cfg.cpus_per_trial)),
            trial_number=r.trial,
        )
        refs[r.trial] = task.remote(config.to_dict(), data_ref, cfg.seed + 1)
    found: dict[int, float] = {}
    for number, ref in refs.items():
        try:
            value = ray.get(ref)
        except ray.exceptions.RayError as exc:
            logger.warning("nas: evaluating trial %d again failed (%s)", number, exc)
            continue
        if value is not None:
            found[number] = value
            tracker.log_repeat(number, value)
    if found:
        study.set_user_attr(REPEATS_ATTR, {str(k): v for k, v in {**done, **found}.items()})
        first = {r.trial: r.value for r in top}
        pairs = ", ".join(f"trial {k} {first[k]:.4f} then {v:.4f}" for k, v in found.items())
        stream.write(
            f"nas: the best {len(found)} evaluated again with another seed: {pairs}; ranked by "
            "the mean\n"
        )
    return found
