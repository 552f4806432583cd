"""The plan of a search: how much training one trial gets at each rung of successive halving,
chosen before the first trial from the budget, the data size, the workers and the cost of a
training sample.

The fidelity unit is the **training sample seen** (one image or series through a training
step). ASHA's time attribute is ``samples``; trials report at :attr:`Plan.report_at`,
at every rung, so several times per epoch when epochs are long; Optuna's intermediate values, MLflow's metric
steps and the leaderboard count samples too. A rung below one epoch trains on a prefix of
the first epoch's order, which is class-stratified and fixed per seed: a stratified subset
of the training data (see :func:`workers.engine.loop.stratified_order`).

Successive halving with reduction factor ``eta`` keeps about ``1 / eta`` of the trials at
each rung, so every rung costs about the same; the plan picks the largest full fidelity for
which the lowest rung still sees at least :data:`MIN_CONFIGS` configurations and the top
rung :data:`MIN_FULL`. :func:`make_plan` is pure: no clock, no Ray, no torch.

Small data (fewer than :data:`SMALL_DATA` training + validation samples) is evaluated over
k stratified folds inside each trial (:func:`folds_for`): a 10% split of a few dozen
samples holds a handful, and its accuracy takes two or three values. On such data an epoch
is a few optimizer steps, so fidelities are also offered in samples (:data:`SAMPLE_CHOICES`,
up to :data:`MAX_EPOCHS` epochs): the lowest rung trains at least :data:`MIN_RUNG_SAMPLES`
samples whatever the data size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

ETA = 3  # successive halving's reduction factor (ASHA's and Hyperband's default)
#: Below this many training + validation samples, k-fold evaluation. 2,000 since digits
#: (1,438): ranked on one 143-image split, the winner of 45-105 configurations tested
#: 98.05-98.89% (mean 98.40, 4 runs); ranked on 5 folds, 98.80 +- 0.16% (3 seeds), level with
#: a hand-written Ray Tune loop (benchmarks/README.md, peers).
SMALL_DATA = 2000
MAX_FOLDS = 5
#: Full fidelities offered in samples, for data so small that epochs are a few steps.
SAMPLE_CHOICES = (65536, 32768, 16384, 8192)
MAX_EPOCHS = 1000  # the most epochs any plan trains (published 1-D baselines train 1,500+)
MAX_REPORTS = 16  # whole-epoch report points past the lowest rung, at most
MIN_CONFIGS = 30  # configurations the lowest rung should see
MIN_FULL = 4  # configurations that should reach full fidelity
MAX_RUNGS = 4
#: Full fidelities tried, in epochs, largest first (capped by ``max_epochs``).
EPOCH_CHOICES = (12, 9, 6, 4, 3, 2, 1.5, 1, 0.75, 0.5, 0.25)
MIN_RUNG_SAMPLES = 1024  # the lowest rung trains at least this many samples
#: ... and at least this many optimizer steps at the largest batch size the space draws: a
#: rung of a few steps leaves networks at chance, and ASHA would promote by noise.
MIN_RUNG_STEPS = 30
#: On one split (large data), a full fidelity below this many epochs ranks architectures on
#: a sliver of the data: the plan then leaves out the costliest architectures instead
#: (:attr:`Plan.max_macs`). Fashion-MNIST, 10 minutes of 2 cores, ranked at 0.15 epochs:
#: 91.34% test against 93.29% for a hand-written loop (benchmarks/README.md, peers).
MIN_RANK_EPOCHS = 1.0
DEFAULT_EPOCHS = 12  # the fidelity of trial budgets (no clock to plan against)
DEFAULT_GRACE_EPOCHS = 2  # the lowest rung of a fixed plan
UTILISATION = 0.85  # share of the workers' time that goes into training, not gaps
TRIAL_OVERHEAD_S = 1.5  # per trial: Ray's spine, building and probing the model


@dataclass(frozen=True)
class Plan:
    """The fidelity schedule of a search (all sizes in training samples)."""

    max_samples: int  # full fidelity: ASHA's max_t
    grace_samples: int  # the lowest rung: ASHA's grace period
    report_at: tuple[int, ...]  # sample counts at which a trial reports (and evaluates)
    eta: int
    rungs: tuple[int, ...]
    configs: tuple[int, ...]  # configurations expected to reach each rung
    train_size: int  # training samples of one model (one fold's, with k folds)
    seconds_per_sample: float | None  # None when the user fixed the fidelity
    source: str  # "planned" or "--epochs"
    folds: int = 1  # k-fold evaluation inside each trial on small data (1: one split)
    #: Architectures over this many MACs are left out: what the budget can rank at
    #: :data:`MIN_RANK_EPOCHS` (None: no cap beyond the user's ``--max-macs``).
    max_macs: int | None = None
    batch_size: int = 0  # the largest the space draws: the lowest rung's steps count at it

    @property
    def max_epochs(self) -> float:
        """Full fidelity in epochs of the training split."""
        return self.max_samples / max(1, self.train_size)

    def describe(self) -> str:
        """One line: ``plan: ~40 configs at 2,000 samples -> 13 at 6,000 -> 4 at 18,000
        (2.5 epochs of 7,200)``."""
        folds = f"; each trial the mean of {self.folds} folds" if self.folds > 1 else ""
        if self.source != "planned":
            return (
                f"plan: {_epochs(self.max_epochs)} epochs per trial (--epochs), ASHA from "
                f"{_epochs(self.grace_samples / self.train_size)} epochs, one report per "
                f"epoch{folds}"
            )
        steps = [f"~{self.configs[0]} configs at {self.rungs[0]:,} samples"]
        steps += [f"{n} at {s:,}" for n, s in zip(self.configs[1:], self.rungs[1:], strict=True)]
        cap = (
            f"; architectures up to {self.max_macs / 1e6:.3g} M MACs, so that the budget ranks "
            f"them on whole epochs"
            if self.max_macs
            else ""
        )
        few = ""
        if self.configs[0] < MIN_CONFIGS and self.batch_size:
            few = (
                f"; fewer than {MIN_CONFIGS} configurations, so that each first rung trains "
                f"{self.rungs[0] // self.batch_size} steps at batch {self.batch_size}"
            )
        return (
            f"plan: {' -> '.join(steps)} ({_epochs(self.max_epochs)} epochs of "
            f"{self.train_size:,}; {self.seconds_per_sample * 1e3:.3g} ms per sample measured"
            f"{folds}{cap}{few})"
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("rungs", "configs", "report_at"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Plan:
        tuples = {k: tuple(d[k]) for k in ("rungs", "configs", "report_at")}
        return cls(**{**d, **tuples})


def _epochs(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def folds_for(samples: int, smallest_class: int) -> int:
    """k of the k-fold evaluation of a data set of ``samples`` training + validation samples
    whose smallest class has ``smallest_class``: 1 (one split) from :data:`SMALL_DATA` up,
    or where a class is too small to appear in two folds."""
    if samples >= SMALL_DATA or smallest_class < 2:
        return 1
    return min(MAX_FOLDS, smallest_class)


def fixed_plan(epochs: int, grace_epochs: int, train_size: int, folds: int = 1) -> Plan:
    """The plan the user fixed with ``--epochs`` / ``--grace-epochs``: one report per epoch."""
    rungs, s = [], grace_epochs
    while s < epochs:
        rungs.append(s * train_size)
        s *= ETA
    rungs.append(epochs * train_size)
    return Plan(
        max_samples=epochs * train_size,
        grace_samples=grace_epochs * train_size,
        report_at=tuple(e * train_size for e in range(1, epochs + 1)),
        eta=ETA,
        rungs=tuple(rungs),
        configs=tuple(0 for _ in rungs),
        train_size=train_size,
        seconds_per_sample=None,
        source="--epochs",
        folds=folds,
    )


def _rung_ladders(max_samples: int, min_rung: int, train_size: int) -> list[list[int]]:
    """Successive-halving rungs ``s0 * ETA**k`` ending at about ``max_samples``, the lowest
    at least ``min_rung``, the most rungs first. At a full fidelity of at most
    :data:`MIN_RANK_EPOCHS` epochs, the shorter ladders follow, down to two rungs: they cost
    more per configuration but bring more configurations to the top, and there ranking on
    more of the data matters more than a finer ladder."""
    count = 1
    while count < MAX_RUNGS and max_samples / ETA**count >= min_rung:
        count += 1
    shortest = 2 if max_samples <= MIN_RANK_EPOCHS * train_size else count
    ladders = []
    for n in range(count, min(count, shortest) - 1, -1):
        lowest = max(1, int(round(max_samples / ETA ** (n - 1))))
        ladders.append([lowest * ETA**k for k in range(n)])
    return ladders


def report_points(rungs: list[int], train_size: int) -> tuple[int, ...]:
    """Where a trial reports: at every rung (what ASHA compares) and at whole epochs past the
    lowest rung, at most :data:`MAX_REPORTS` of them (so long trainings still show a curve)."""
    every = train_size * max(1, math.ceil(rungs[-1] / train_size / MAX_REPORTS))
    epochs = range(every, rungs[-1] + 1, every)
    apart = every / 4  # a point this close to a rung adds nothing to the curve
    extra = (e for e in epochs if e > rungs[0] and min(abs(e - r) for r in rungs) >= apart)
    return tuple(sorted({*rungs, *extra}))


def _configs(
    worker_seconds: float, rungs: list[int], sec_per_sample: float, eval_seconds: float
) -> list[int]:
    """How many configurations reach each rung when ``worker_seconds`` are spent;
    ``eval_seconds`` is one evaluation of the validation split."""
    lowest = rungs[0] * sec_per_sample + TRIAL_OVERHEAD_S + eval_seconds
    # every promotion of 1/ETA of a rung trains the gap to the next rung
    per_config = lowest + sum(
        ((hi - lo) * sec_per_sample + eval_seconds) / ETA ** (k + 1)
        for k, (lo, hi) in enumerate(zip(rungs, rungs[1:], strict=False))
    )
    n0 = worker_seconds / per_config
    return [max(0, int(n0 / ETA**k)) for k in range(len(rungs))]


def make_plan(
    *,
    budget_seconds: float,
    train_size: int,
    workers: int,
    seconds_per_sample: float,
    val_size: int = 0,
    max_epochs: float = EPOCH_CHOICES[0],
    folds: int = 1,
    batch_size: int = 0,
) -> Plan:
    """The largest full fidelity (at most ``max_epochs``, or :data:`MAX_EPOCHS` through
    :data:`SAMPLE_CHOICES` on small data) at which ``workers`` workers over
    ``budget_seconds`` evaluate at least :data:`MIN_CONFIGS` configurations at the lowest
    rung and :data:`MIN_FULL` at the top, with the most rungs that manage it; the cheapest
    one when no fidelity manages both.

    ``seconds_per_sample`` is one training sample's cost on one worker (measured), and an
    evaluation of the ``val_size`` validation samples (one per report) costs a third of that
    per sample. With ``folds`` > 1 every trial trains and evaluates that many models
    (``train_size`` and ``val_size`` are one fold's). ``batch_size``, the largest the space
    draws, sets the lowest rung's floor: :data:`MIN_RUNG_STEPS` optimizer steps. Where the
    budget cannot give :data:`MIN_CONFIGS` configurations such a rung, the plan evaluates
    fewer, trained ones, and says so.
    """
    if budget_seconds <= 0 or train_size < 1 or workers < 1 or seconds_per_sample <= 0:
        raise ValueError(
            f"make_plan: budget_seconds={budget_seconds}, train_size={train_size}, "
            f"workers={workers}, seconds_per_sample={seconds_per_sample}: all must be > 0"
        )
    worker_seconds = budget_seconds * workers * UTILISATION
    per_sample = seconds_per_sample * folds
    eval_seconds = val_size * per_sample / 3  # a forward pass, no backward
    min_rung = max(MIN_RUNG_SAMPLES, MIN_RUNG_STEPS * batch_size)
    tried = [
        [(rungs, _configs(worker_seconds, rungs, per_sample, eval_seconds)) for rungs in ladders]
        for ladders in (
            _rung_ladders(m, min_rung, train_size)
            for m in _fidelities(train_size, max_epochs, min_rung)
        )
    ]  # by fidelity, largest first; each fidelity's ladders, the most rungs first
    meets = [(r, c) for fid in tried for r, c in fid if _meets_bars(c)]
    rungs, configs = meets[0] if meets else tried[-1][0]
    return Plan(
        max_samples=rungs[-1],
        grace_samples=rungs[0],
        report_at=report_points(rungs, train_size),
        eta=ETA,
        rungs=tuple(rungs),
        configs=tuple(configs),
        train_size=train_size,
        seconds_per_sample=seconds_per_sample,
        source="planned",
        folds=folds,
        batch_size=batch_size,
    )


def _meets_bars(configs: list[int] | tuple[int, ...]) -> bool:
    """At least :data:`MIN_CONFIGS` configurations at the lowest rung, :data:`MIN_FULL` at
    the top."""
    return configs[0] >= MIN_CONFIGS and configs[-1] >= MIN_FULL


def _fidelities(train_size: int, max_epochs: float, min_rung: int) -> list[int]:
    """Full fidelities to try, in samples, largest first: the epoch choices up to
    ``max_epochs`` and, where that many samples are at most :data:`MAX_EPOCHS` epochs, the
    sample choices; never below ``min_rung``."""
    by_epochs = {round(e * train_size) for e in EPOCH_CHOICES if e <= max_epochs}
    by_samples = {s for s in SAMPLE_CHOICES if s <= MAX_EPOCHS * train_size}
    return sorted({max(min_rung, s) for s in by_epochs | by_samples}, reverse=True)


def affordable_seconds_per_sample(
    *,
    budget_seconds: float,
    train_size: int,
    workers: int,
    val_size: int = 0,
    epochs: float = MIN_RANK_EPOCHS,
    batch_size: int = 0,
) -> float:
    """The largest cost of a training sample at which :func:`make_plan` reaches ``epochs``
    of full fidelity with its bars met: what the architectures of a search may cost when
    the budget is to rank them on that many epochs."""

    def reaches(seconds_per_sample: float) -> bool:
        plan = make_plan(
            budget_seconds=budget_seconds,
            train_size=train_size,
            workers=workers,
            seconds_per_sample=seconds_per_sample,
            val_size=val_size,
            batch_size=batch_size,
        )
        # rungs round to whole samples
        return _meets_bars(plan.configs) and plan.max_epochs >= epochs * 0.99

    lo, hi = 1e-9, 10.0  # log-space bisection: make_plan is monotone in the cost
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if reaches(mid) else (lo, mid)
    return lo
