"""Warm start: a new search first evaluates configurations known to be good, expressed as
the space's own parameters and queued with Optuna's ``study.enqueue_trial``.

``--warm-start zoo`` (the default) queues :func:`search_spaces.starts.starting_points` for
the data's shape; ``--warm-start STUDY`` the best completed trials of another search in the
same storage (their architectures on this data's input: the transfer of a search). Each is
turned into parameters by the sampler's inverse (:func:`search_spaces.inverse.params_for`),
so a candidate the space cannot express is skipped with a note, never forced in. Queued
trials are asked before the sampler proposes anything; ``skip_if_exists`` and the
searcher's reuse of evaluated configurations keep any of them from training twice.

A candidate over the user's ``--max-params`` / ``--max-macs`` or the plan's MACs cap is
narrowed to the largest of the space's ``scaling.width`` multipliers that fits (a plain CNN
at half width rather than no plain CNN: on Fashion-MNIST's 10-minute plan every starting
point was over the cap), and skipped with a note when none does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna

import search_spaces
from nas.core.config import SearchConfig
from nas.driver.define_by_run import OVER_PLAN_CAP, limit_violation
from nas.driver.plan import Plan
from nas.study.records import load_study, trial_records
from search_spaces.inverse import NotExpressible, params_for
from search_spaces.starts import starting_points

FROM_STUDY = 3  # best trials taken from another study


@dataclass
class WarmStart:
    """What was queued (names) and what was skipped (one note each)."""

    queued: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if not self.queued and not self.skipped:
            return "warm start: none"
        text = f"warm start: {len(self.queued)} configurations first"
        if self.queued:
            text += f" ({', '.join(self.queued)})"
        return text + "".join(f"\n  skipped {note}" for note in self.skipped)


def candidates(cfg: SearchConfig) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, spec, train) of every candidate of ``cfg.warm_start`` for this data."""
    data = cfg.data
    if cfg.warm_start == "none":
        return []
    if cfg.warm_start == "zoo":
        return starting_points(data.dims, data.channels, tuple(data.size))
    inp = {"dims": data.dims, "channels": data.channels, "size": list(data.size)}
    records = trial_records(load_study(cfg.storage, cfg.warm_start))
    done = [r for r in records if r.status in ("completed", "reused") and r.spec and r.train]
    return [
        (f"{cfg.warm_start}#{r.trial}", {**r.spec, "input": inp}, r.train)
        for r in done[:FROM_STUDY]
    ]


def _width(spec: dict[str, Any]) -> float:
    return float(spec.get("scaling", {}).get("width", 1.0))


def fitted(
    spec: dict[str, Any], cfg: SearchConfig, space: Any, plan: Plan | None
) -> tuple[dict[str, Any], float]:
    """``spec`` at the largest width multiplier (its own, or a smaller one the space offers)
    within the user's limits and the plan's MACs cap, and that multiplier. Raises
    ``ValueError`` naming the limit when even the smallest is over it."""
    if not isinstance(space, search_spaces.Space):
        space = search_spaces.load_space(space)
    own = _width(spec)
    offered = space.scaling["width"].values or ()
    widths = [own, *sorted((float(w) for w in offered if w < own), reverse=True)]
    why = ""
    for width in widths:
        narrowed = {**spec, "scaling": {**spec.get("scaling", {}), "width": width}}
        cost = search_spaces.count(narrowed, cfg.data.num_classes)
        why = limit_violation(int(cost.params), int(cost.macs), cfg, plan)
        if why is None:
            return narrowed, width
    raise ValueError(f"{why} at every width multiplier the space offers down to {widths[-1]:g}")


def enqueue(
    study: optuna.Study, cfg: SearchConfig, space: Any, plan: Plan | None = None
) -> WarmStart:
    """Queue the warm-start candidates the space can express, best-known first, each
    narrowed to fit the limits (:func:`fitted`). When the plan's MACs cap alone would leave
    none, the cheapest candidate at its narrowest width is queued anyway: a search on a
    tight budget still starts from a known-good network."""
    out = WarmStart()
    over_cap = []  # (MACs, name, params) of candidates only the plan's cap refused
    for name, spec, train in candidates(cfg):
        own = _width(spec)
        try:
            spec, width = fitted(spec, cfg, space, plan)
            params = params_for(spec, train, space, num_classes=cfg.data.num_classes)
        except (NotExpressible, ValueError) as exc:
            out.skipped.append(f"{name}: {exc}")
            kept = _narrowest(name, spec, train, cfg, space) if plan and plan.max_macs else None
            if kept is not None:
                over_cap.append(kept)
            continue
        if width != own:
            name = f"{name} x{width:g}"
        study.enqueue_trial(params, user_attrs={"warm_start": name}, skip_if_exists=True)
        out.queued.append(name)
    if not out.queued and over_cap:
        _, name, params = min(over_cap, key=lambda c: c[0])
        attrs = {"warm_start": name, OVER_PLAN_CAP: True}
        study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=True)
        out.queued.append(f"{name} (over the plan's MACs cap: the cheapest start, kept)")
    return out


def _narrowest(
    name: str, spec: dict[str, Any], train: dict[str, Any], cfg: SearchConfig, space: Any
) -> tuple[int, str, dict[str, Any]] | None:
    """(MACs, name, trial params) of ``spec`` at its narrowest width when that is within
    the user's limits and the space expresses it; None otherwise."""
    try:
        narrowed, width = fitted(spec, cfg, space, None)
        if not isinstance(space, search_spaces.Space):
            space = search_spaces.load_space(space)
        offered = [float(w) for w in space.scaling["width"].values or () if w <= width]
        if offered:
            width = min(offered)
            narrowed = {**narrowed, "scaling": {**narrowed.get("scaling", {}), "width": width}}
        params = params_for(narrowed, train, space, num_classes=cfg.data.num_classes)
    except (NotExpressible, ValueError):
        return None
    macs = int(search_spaces.count(narrowed, cfg.data.num_classes).macs)
    label = f"{name} x{width:g}" if width != _width(spec) else name
    return macs, label, params
