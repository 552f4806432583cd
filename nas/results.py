"""Reading a study back: trials, leaderboard, Pareto front. Runs nothing.

The Optuna study is the record of a search (MLflow mirrors it). Each trial carries user
attributes set by the search: ``status``, ``spec_id``, ``params``, ``macs``, ``epochs``,
``spec``, ``train``, ``reason``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from nas.errors import UsageError


@dataclass
class TrialRecord:
    """One trial as the leaderboard shows it."""

    trial: int
    state: str  # Optuna's state: COMPLETE, PRUNED, FAIL, RUNNING
    status: str  # ours: completed, pruned, stopped, duplicate, rejected, diverged, ...
    value: float | None  # first objective (validation accuracy)
    values: list[float] | None
    params: int | None
    macs: int | None
    epochs: int | None
    spec_id: str | None
    reason: str | None = None
    latency_ms_b1: float | None = None
    pareto: bool = False
    spec: dict[str, Any] | None = field(default=None, repr=False)
    train: dict[str, Any] | None = field(default=None, repr=False)

    def to_json(self, with_spec: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_spec:
            d.pop("spec")
            d.pop("train")
        return d


def study_names(storage: str) -> list[str]:
    """Names of the studies in an Optuna storage (empty when the file does not exist)."""
    if storage.startswith("sqlite:///"):
        from pathlib import Path

        if not Path(storage[len("sqlite:///") :]).is_file():
            return []
    return [s.study_name for s in optuna.get_all_study_summaries(storage=storage)]


def load_study(storage: str, name: str) -> optuna.Study:
    """The study, or a UsageError naming what exists."""
    names = study_names(storage)
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise UsageError(f"--name {name!r}: no such search in {storage} (searches there: {known})")
    return optuna.load_study(study_name=name, storage=storage)


def _record(t: optuna.trial.FrozenTrial) -> TrialRecord:
    a = t.user_attrs
    values = list(t.values) if t.values else None
    value = values[0] if values else None
    if value is None and t.state == TrialState.PRUNED and t.intermediate_values:
        value = t.intermediate_values[max(t.intermediate_values)]
    status = a.get("status") or (
        "running" if t.state == TrialState.RUNNING else t.state.name.lower()
    )
    return TrialRecord(
        trial=t.number,
        state=t.state.name,
        status=status,
        value=value,
        values=values,
        params=a.get("params"),
        macs=a.get("macs"),
        epochs=a.get("epochs"),
        spec_id=a.get("spec_id"),
        reason=a.get("reason"),
        latency_ms_b1=a.get("latency_ms_b1"),
        spec=a.get("spec"),
        train=a.get("train"),
    )


def trial_records(study: optuna.Study) -> list[TrialRecord]:
    """All trials, best first: completed by value, then pruned by partial value, then the rest."""
    records = [_record(t) for t in study.get_trials(deepcopy=False)]
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
    order = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "FAIL": 3, "WAITING": 4}
    records.sort(
        key=lambda r: (order.get(r.state, 5), -(r.value if r.value is not None else -1.0), r.trial)
    )
    return records


def best_record(records: list[TrialRecord]) -> TrialRecord | None:
    """The accuracy-best completed trial (on a Pareto front, its accuracy-best point)."""
    done = [r for r in records if r.state == "COMPLETE" and r.value is not None]
    return max(done, key=lambda r: r.value) if done else None


def _fmt_int(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= 1e9:
        return f"{n / 1e9:.2f}G"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return str(n)


def format_table(records: list[TrialRecord], limit: int | None = 20, multi: bool = False) -> str:
    """The leaderboard as a text table."""
    header = ["rank", "trial", "val_acc", "params", "MACs", "epochs", "status", "spec_id"]
    if multi:
        header.append("pareto")
    rows = []
    shown = records if limit is None else records[:limit]
    for rank, r in enumerate(shown, 1):
        row = [
            str(rank),
            str(r.trial),
            f"{r.value:.4f}" if r.value is not None else "-",
            _fmt_int(r.params),
            _fmt_int(r.macs),
            str(r.epochs) if r.epochs is not None else "-",
            r.status,
            r.spec_id or "-",
        ]
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
