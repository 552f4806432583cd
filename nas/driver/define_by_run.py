"""The define-by-run function handed to Optuna (through Ray's OptunaSearch).

It turns an Optuna trial into a concrete spec plus training settings (search_spaces.sample),
counts its cost, records what identifies it as user attributes, and returns everything the
Ray trainable needs as constants of the trial's config. It trains nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import search_spaces
from nas.core.config import DataInfo, SearchConfig
from nas.driver.plan import Plan
from workers.trial import DatasetRef, TrialConfig

#: The user attribute of the one warm start kept over the plan's MACs cap
#: (:func:`nas.driver.warm_start.enqueue`): it is held to the user's limits only.
OVER_PLAN_CAP = "over_plan_cap"


def config_key(spec_id: str, train: dict[str, Any]) -> str:
    """Identity of an evaluation: architecture id + canonical training settings."""
    blob = spec_id + json.dumps(train, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def limit_violation(
    params: int, macs: int, cfg: SearchConfig, plan: Plan | None = None
) -> str | None:
    """Why a spec is over the user's limits or the plan's MACs cap, or None."""
    if cfg.max_params is not None and params > cfg.max_params:
        return f"{params:,} parameters > --max-params {cfg.max_params:,}"
    if cfg.max_macs is not None and macs > cfg.max_macs:
        return f"{macs:,} MACs > --max-macs {cfg.max_macs:,}"
    if plan is not None and plan.max_macs is not None and macs > plan.max_macs:
        return f"{macs:,} MACs > {plan.max_macs:,}, the most the budget ranks on whole epochs"
    return None


class DefineByRun:
    """The function OptunaSearch calls once per trial (a class so Ray can pickle it)."""

    def __init__(self, cfg: SearchConfig, space: Any, data: DataInfo, plan: Plan) -> None:
        self.cfg = cfg
        self.space = space
        self.data = data
        self.plan = plan

    def __call__(self, trial: Any) -> dict[str, Any]:
        cfg, data = self.cfg, self.data
        try:
            spec, train = search_spaces.sample(
                trial,
                self.space,
                dims=data.dims,
                channels=data.channels,
                size=tuple(data.size),
                num_classes=data.num_classes,
            )
        except ValueError as exc:  # over the space's own limits, or impossible: no worker
            spec, train = getattr(exc, "spec", None) or {}, {}
            sid = search_spaces.spec_id(spec) if spec else ""
            params, macs, rejected = 0, 0, f"rejected by the space: {exc}"
        else:
            sid = search_spaces.spec_id(spec)
            try:
                cost = search_spaces.count(spec, data.num_classes)
                params, macs = int(cost.params), int(cost.macs)
                kept = trial.user_attrs.get(OVER_PLAN_CAP)
                rejected = limit_violation(params, macs, cfg, None if kept else self.plan)
            except ValueError as exc:  # a spec the catalog refuses never reaches a worker
                params, macs, rejected = 0, 0, f"invalid spec: {exc}"
        key = config_key(sid, train)
        for name, value in (
            ("spec_id", sid),
            ("config_key", key),
            ("params", params),
            ("macs", macs),
            ("spec", spec),
            ("train", train),
        ):
            trial.set_user_attr(name, value)
        return TrialConfig(
            spec=spec,
            train=train,
            spec_id=sid,
            config_key=key,
            params=params,
            macs=macs,
            rejected=rejected,
            dataset=DatasetRef(data.name, data.data_dir, cfg.val_fraction, cfg.seed),
            max_samples=self.plan.max_samples,
            report_at=tuple(self.plan.report_at),
            folds=self.plan.folds,
            seed=cfg.seed,
            threads=max(1, int(cfg.cpus_per_trial)),
            trial_number=trial.number,
            warm_start=trial.user_attrs.get("warm_start"),
            latency_first=cfg.latency_ranked,
            max_latency_ms=cfg.max_latency_ms,
        ).to_dict()
