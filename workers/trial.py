"""The trial contract: the config the driver hands a trial and the report a trial sends back.

Ray Tune carries both as plain dicts (a trial's ``config``, each ``tune.report``), so each
type has ``to_dict`` / ``from_dict``; everything that writes or reads them goes through these
types and the metric names below, and ``docs/INTERFACES.md`` lists exactly these keys (a test
ties the two together). The driver builds the config in :mod:`nas.driver.define_by_run`; the
Ray trainable (:mod:`workers.trainable`) reads it and reports; the searcher, the tracker and
the search's state read the reports.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: Metric names a report carries (the keys Optuna, MLflow and the schedulers see).
SAMPLES = "samples"  # training samples seen: the fidelity unit (ASHA's time_attr)
EPOCH = "epoch"
VAL_ACC = "val_acc"
VAL_LOSS = "val_loss"
TRAIN_LOSS = "train_loss"
LR = "lr"
IMAGES_PER_S = "images_per_s"
PEAK_MEMORY_MB = "peak_memory_mb"
VAL_ACC_STD = "val_acc_std"
FOLDS = "folds"
PARAMS = "params"
MACS = "macs"
LATENCY_MS_B1 = "latency_ms_b1"
LATENCY_MS_B64 = "latency_ms_b64"
STATUS = "status"
#: The config key Ray's callbacks read on every result (the Optuna trial number).
TRIAL_NUMBER = "trial_number"


#: The share of the training data held out for validation when none is given.
VAL_FRACTION = 0.1


@dataclass(frozen=True)
class DatasetRef:
    """The data set a trial loads itself when the driver's copy is not handed over."""

    name: str
    data_dir: str | None = None
    val_fraction: float = VAL_FRACTION
    seed: int = 0


@dataclass(frozen=True)
class TrialConfig:
    """What one trial gets: the architecture, its training settings and its fidelity.

    ``max_samples`` is the plan's full fidelity in training samples, with a report after
    each of ``report_at``; ``folds`` > 1 evaluates the mean of k stratified folds (small
    data). ``rejected`` says why the driver refuses to train it (over a limit, an invalid
    spec): such a trial never reaches a worker. ``warm_start`` names the starting point a
    trial was seeded from, or is None."""

    spec: dict[str, Any]
    train: dict[str, Any]
    max_samples: int = 0  # 0 only in a config rebuilt from the study's record of a trial
    report_at: tuple[int, ...] = ()
    folds: int = 1
    dataset: DatasetRef | None = None
    seed: int = 0
    threads: int = 1
    trial_number: int = 0
    spec_id: str = ""
    config_key: str = ""
    params: int = 0
    macs: int = 0
    rejected: str | None = None
    warm_start: str | None = None
    #: measure the latency before training, so that every report carries it (a search
    #: with a latency objective ranks its rungs on it); else only a completed trial's
    latency_first: bool = False
    #: ``--max-latency-ms``: a network over it at batch 1 is measured, reported ``rejected``
    #: and not trained
    max_latency_ms: float | None = None

    @property
    def measures_latency_first(self) -> bool:
        """The worker measures the latency before training: asked to, or to apply
        ``max_latency_ms``."""
        return self.latency_first or self.max_latency_ms is not None

    def to_dict(self) -> dict[str, Any]:
        """The plain dict Ray Tune carries (costs nested under ``cost``)."""
        d = dataclasses.asdict(self)
        d["report_at"] = list(self.report_at)
        d["cost"] = {PARAMS: d.pop("params"), MACS: d.pop("macs")}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialConfig:
        """The config of a trial from Ray's dict; an unknown key is a ValueError naming it."""
        d = dict(d)
        cost = d.pop("cost", None) or {}
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"trial config: unknown keys {unknown}, expected {config_keys()}")
        dataset = d.pop("dataset", None)
        report_at = tuple(int(x) for x in d.pop("report_at", None) or ())
        return cls(
            **d,
            report_at=report_at,
            params=int(cost.get(PARAMS, 0)),
            macs=int(cost.get(MACS, 0)),
            dataset=DatasetRef(**dataset) if dataset else None,
        )


@dataclass
class TrialReport:
    """One report of a trial. Every report carries the fidelity reached, the accuracy and the
    status (``running`` until the last); the last of a completed trial also its latency, and
    that of a failed one its reason and diagnostics (``traceback``, the worker's ``log_tail``).
    ``note`` is what the worker had to say (a refused checkpoint, a smaller batch after OOM)."""

    samples: int
    val_acc: float
    status: str
    epoch: float | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    lr: float | None = None
    images_per_s: float | None = None
    peak_memory_mb: float | None = None
    val_acc_std: float | None = None
    folds: int | None = None
    params: int | None = None
    macs: int | None = None
    latency_ms_b1: float | None = None
    latency_ms_b64: float | None = None
    note: str | None = None
    reason: str | None = None
    traceback: str | None = None
    log_tail: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The dict handed to ``tune.report``: the fields that are set."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        d.pop("extra")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialReport:
        """A report from Ray's result dict; what Ray adds (``training_iteration``,
        ``time_this_iter_s``, ...) is kept in ``extra``."""
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(
            samples=int(d.get(SAMPLES, 0)),
            val_acc=float(d.get(VAL_ACC, 0.0)),
            status=str(d.get(STATUS, "")),
            **{k: v for k, v in d.items() if k in known - {SAMPLES, VAL_ACC, STATUS}},
            extra={k: v for k, v in d.items() if k not in known},
        )


def config_keys() -> list[str]:
    """The keys of a trial's config dict, as Ray carries it."""
    names = [f.name for f in dataclasses.fields(TrialConfig) if f.name not in (PARAMS, MACS)]
    return sorted([*names, "cost"])


def report_keys() -> list[str]:
    """The keys a report may carry."""
    return sorted(f.name for f in dataclasses.fields(TrialReport) if f.name != "extra")
