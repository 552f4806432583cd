"""Reading a study back: trials, leaderboard, Pareto front. Runs nothing.

The Optuna study is the record of a search (MLflow mirrors it). Each trial carries user
attributes set by the search: ``status``, ``spec_id``, ``params``, ``macs``, ``samples``
(the fidelity reached, in training samples), ``epochs``,
``spec``, ``train``, ``reason``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from nas.core.credentials import mask_url
from nas.core.errors import UsageError
from nas.study.status_table import TrialStatus, row
from workers.trial import LATENCY_MS_B1, SAMPLES, VAL_ACC, VAL_ACC_STD


@dataclass
class TrialRecord:
    """One trial as the leaderboard shows it."""

    trial: int
    state: str  # Optuna's state: COMPLETE, PRUNED, FAIL, RUNNING
    status: str  # ours, a nas.study.status_table.TrialStatus value: completed, pruned, stopped, reused, ...
    value: float | None  # first objective (validation accuracy)
    values: list[float] | None
    params: int | None
    macs: int | None
    samples: int | None
    epochs: float | None
    spec_id: str | None
    reason: str | None = None
    val_acc_std: float | None = None  # spread over the folds (k-fold evaluation of small data)
    latency_ms_b1: float | None = None
    #: its validation accuracy trained again with another seed (the best few only)
    repeat: float | None = None
    pareto: bool = False
    #: within every ``--constraint`` (Optuna's constraints of the trial all at most 0)
    feasible: bool = True
    spec: dict[str, Any] | None = field(default=None, repr=False)
    train: dict[str, Any] | None = field(default=None, repr=False)

    def to_json(self, with_spec: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_spec:
            d.pop("spec")
            d.pop("train")
        return d


#: The study's user attribute holding the best trials' second evaluations:
#: ``{"<trial number>": val_acc}`` (:mod:`nas.driver.repeat_best`).
REPEATS_ATTR = "repeats"


def study_names(storage: str) -> list[str]:
    """Names of the studies in an Optuna storage (empty when the file does not exist)."""
    if storage.startswith("sqlite:///"):
        from pathlib import Path

        if not Path(storage[len("sqlite:///") :]).is_file():
            return []
    from nas.study.storage import rdb_storage

    return [s.study_name for s in optuna.get_all_study_summaries(storage=rdb_storage(storage))]


def load_study(storage: str, name: str) -> optuna.Study:
    """The study, or a UsageError naming what exists."""
    names = study_names(storage)
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise UsageError(
            f"--name {name!r}: no such search in {mask_url(storage)} (searches there: {known})"
        )
    from nas.study.storage import rdb_storage

    return optuna.load_study(study_name=name, storage=rdb_storage(storage))


def stored_status(t: optuna.trial.FrozenTrial) -> str:
    """The trial's status as stored (``duplicate`` read as ``reused``); a trial without one
    is running, or, closed FAIL by a later driver, lost with the driver that ran it."""
    stored = TrialStatus.parse(t.user_attrs.get("status"))
    if stored is not None:
        return stored.value
    if t.state == TrialState.RUNNING:
        return TrialStatus.RUNNING.value
    if t.state == TrialState.FAIL:
        return TrialStatus.DRIVER_LOST.value
    return t.state.name.lower()


def _record(t: optuna.trial.FrozenTrial) -> TrialRecord:
    a = t.user_attrs
    values = list(t.values) if t.values else None
    value = values[0] if values else None
    if value is None and t.state == TrialState.PRUNED:  # its last report, at the fidelity reached
        value = a.get(VAL_ACC)
        if value is None and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
    status = stored_status(t)
    return TrialRecord(
        trial=t.number,
        state=t.state.name,
        status=status,
        value=value,
        values=values,
        params=a.get("params"),
        macs=a.get("macs"),
        samples=a.get(SAMPLES),
        epochs=a.get("epochs"),
        spec_id=a.get("spec_id"),
        reason=a.get("reason"),
        val_acc_std=a.get(VAL_ACC_STD),
        feasible=all(v <= 0 for v in t.constraints.values()),
        latency_ms_b1=a.get(LATENCY_MS_B1),
        spec=a.get("spec"),
        train=a.get("train"),
    )


def trial_records(study: optuna.Study) -> list[TrialRecord]:
    """All trials, best first: completed by value, then pruned by partial value, then the
    rest. Queued warm-start trials not asked yet (Optuna's WAITING) are not trials yet."""
    asked = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]
    records = [_record(t) for t in asked]
    repeats = study.user_attrs.get(REPEATS_ATTR) or {}
    for r in records:
        r.repeat = repeats.get(str(r.trial))
    if len(study.directions) > 1:
        front = {t.number for t in study.best_trials}
        for r in records:
            r.pareto = r.trial in front
    elif records:
        try:
            best = study.best_trial.number
            for r in records:
                r.pareto = r.trial == best
        except ValueError:
            pass
    records.sort(key=_rank_key)
    return records


def _rank_key(r: TrialRecord) -> tuple:
    """The status table's group (completed, then pruned / stopped at the fidelity they
    reached, then running, failed, rejected); in a group the trials evaluated twice first,
    by their mean; then value, then fewer parameters."""
    value = r.value if r.value is not None else float("-inf")
    if r.repeat is not None and r.value is not None:
        value = (r.value + r.repeat) / 2
    params = r.params if r.params is not None else float("inf")
    return (row(r.status).rank, r.repeat is None, -value, params, r.trial)


def best_record(records: list[TrialRecord]) -> TrialRecord | None:
    """The accuracy-best completed trial within the ``--constraint`` limits, or of all when
    none is (ties: fewer parameters; on a Pareto front, its accuracy-best point)."""
    done = [r for r in records if r.state == "COMPLETE" and r.value is not None]
    done = [r for r in done if r.feasible] or done
    return min(done, key=_rank_key) if done else None


def handover_record(records: list[TrialRecord]) -> tuple[TrialRecord | None, str | None]:
    """What ``--best`` hands over: the best completed trial, or, when none completed (every
    trial was stopped by the budget or pruned), the best of those at the fidelity it reached,
    with a note saying so. (None, None) when no trial has a value and an architecture."""
    best = best_record(records)
    if best is not None:
        return best, None
    partial = [r for r in records if r.state == "PRUNED" and r.value is not None and r.spec]
    if not partial:
        return None, None
    best = min(partial, key=_rank_key)
    note = (
        f"no trial completed; handing over trial {best.trial} ({best.status} after "
        f"{format_count(best.samples)} samples at val_acc {best.value:.4f}), the best of those "
        "that reported"
    )
    return best, note


def format_count(n: int | None) -> str:
    """``14.3k``, ``2.54M``, ``1.10G``: a parameter or MAC count for tables."""
    if n is None:
        return "-"
    if n >= 1e9:
        return f"{n / 1e9:.2f}G"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return str(n)


def _fmt_value(r: TrialRecord) -> str:
    """``0.9800``, ``0.9800±0.0245`` for the mean over folds, and ``, again 0.9750`` when
    it was evaluated a second time."""
    if r.value is None:
        return "-"
    text = f"{r.value:.4f}" + (f"±{r.val_acc_std:.4f}" if r.val_acc_std is not None else "")
    return text + (f", again {r.repeat:.4f}" if r.repeat is not None else "")


def format_table(records: list[TrialRecord], limit: int | None = 20, multi: bool = False) -> str:
    """The leaderboard as a text table."""
    header = ["rank", "trial", "val_acc", "params", "MACs", "samples", "status", "spec_id"]
    latency = multi and any(r.latency_ms_b1 is not None for r in records)
    if latency:
        header.append("ms_b1")
    if multi:
        header.append("pareto")
    rows = []
    shown = records if limit is None else records[:limit]
    for rank, r in enumerate(shown, 1):
        row = [
            str(rank),
            str(r.trial),
            _fmt_value(r),
            format_count(r.params),
            format_count(r.macs),
            format_count(r.samples),
            r.status,
            r.spec_id or "-",
        ]
        if latency:
            row.append(f"{r.latency_ms_b1:.2f}" if r.latency_ms_b1 is not None else "-")
        if multi:
            row.append("*" if r.pareto else "")
        rows.append(row)
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
        for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    if limit is not None and len(records) > limit:
        lines.append(f"... {len(records) - limit} more (nas leaderboard --json for all)")
    return "\n".join(lines)
