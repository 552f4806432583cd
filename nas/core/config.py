"""The validated configuration of one search: every option checked before anything is written.

:func:`nas.driver.prepare.prepare_search` turns parsed CLI arguments into one frozen
:class:`SearchConfig`. Every problem raises :class:`~nas.core.errors.UsageError` with one line naming the bad value and what
is accepted, so ``nas search`` exits 2 without a traceback and without creating files.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nas.core.budget import Budget
from nas.core.credentials import is_masked, mask_url, register, unmask
from nas.core.errors import UsageError
from workers.trial import LATENCY_MS_B1, MACS, PARAMS, VAL_ACC, VAL_FRACTION

# objective name -> (metric reported by the trainable, direction)
OBJECTIVES: dict[str, tuple[str, str]] = {
    "accuracy": (VAL_ACC, "max"),
    "params": (PARAMS, "min"),
    "macs": (MACS, "min"),
    "latency": (LATENCY_MS_B1, "min"),
}
SAMPLERS = ("tpe", "local", "random", "cmaes", "nsga2", "qmc")
SCHEDULERS = ("asha", "hyperband", "none")
DEFAULT_WORKDIR = "nas-work"
DEFAULT_NAME = "search"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SUFFIX = {"k": 1e3, "m": 1e6, "g": 1e9}


def parse_count(flag: str, text: str | None) -> int | None:
    """``2.5M`` / ``500k`` / ``1e6`` / ``300000`` -> int; None passes through."""
    if text is None:
        return None
    raw = str(text).strip().lower().replace("_", "").replace(",", "")
    try:
        value = float(raw[:-1]) * _SUFFIX[raw[-1]] if raw and raw[-1] in _SUFFIX else float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value:
        raise UsageError(f"{flag} {text!r}: expected a positive count such as 300000, 500k or 2.5M")
    return int(value)


def parse_objectives(text: str) -> tuple[str, ...]:
    """``accuracy,params`` -> ("accuracy", "params"); accuracy must come first."""
    names = tuple(n.strip().lower() for n in str(text).split(",") if n.strip())
    unknown = [n for n in names if n not in OBJECTIVES]
    if not names or unknown:
        raise UsageError(
            f"--objective {text!r}: expected accuracy, optionally followed by params, macs or "
            "latency (e.g. accuracy,params)"
        )
    if names[0] != "accuracy" or len(set(names)) != len(names):
        raise UsageError(
            f"--objective {text!r}: the first objective must be accuracy and none may repeat "
            "(e.g. accuracy,macs)"
        )
    return names


#: ``--constraint`` costs: the reported metric each limits
CONSTRAINED = {"latency": LATENCY_MS_B1, "params": PARAMS, "macs": MACS}


def parse_constraint(text: str) -> tuple[str, float]:
    """``latency<=2ms`` -> ("latency", 2.0) (milliseconds at batch 1); ``params<=100k``,
    ``macs<=5M`` -> counts. A soft limit: the sampler prefers configurations within it."""
    match = re.fullmatch(r"\s*(\w+)\s*<=\s*([0-9.eE+_,]+[kKmMgG]?)\s*(ms)?\s*", str(text))
    cost = match.group(1).lower() if match else None
    if match is None or cost not in CONSTRAINED or (match.group(3) and cost != "latency"):
        raise UsageError(
            f"--constraint {text!r}: expected latency<=MS, params<=N or macs<=N "
            "(e.g. latency<=2ms, params<=100k, macs<=5M)"
        )
    if cost == "latency":
        return cost, parse_milliseconds(f"--constraint {text!r}:", match.group(2))
    return cost, float(parse_count(f"--constraint {text!r}:", match.group(2)))


def parse_milliseconds(flag: str, text: str | None) -> float | None:
    """``2.5`` / ``2.5ms`` -> 2.5 (milliseconds at batch 1, > 0); None passes through."""
    if text is None:
        return None
    try:
        value = float(str(text).strip().lower().removesuffix("ms"))
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise UsageError(f"{flag} {text!r}: expected milliseconds at batch 1 > 0, such as 2 or 0.5")
    return value


def sqlite_url(path: Path) -> str:
    """SQLAlchemy URL of a SQLite file (absolute, so Ray workers and restores agree)."""
    return f"sqlite:///{path.resolve()}"


def check_writable(workdir: Path) -> None:
    """Raise unless ``workdir`` is (or could be created as) a writable folder; leave nothing.

    The nearest existing ancestor is probed with a temporary folder that is removed at once,
    which also catches read-only mounts where ``os.access`` says yes (e.g. for root).
    """
    probe = workdir
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"--workdir {str(workdir)!r}: {str(probe)!r} is a file, not a folder")
    try:
        tempfile.TemporaryDirectory(dir=probe).cleanup()
    except OSError as exc:
        raise UsageError(
            f"--workdir {str(workdir)!r}: {str(probe)!r} is not writable ({exc.strerror})"
        ) from None


@dataclass(frozen=True)
class DataInfo:
    """What the sampler needs to know of the data, probed once in the driver."""

    name: str
    data_dir: str | None
    dims: int
    channels: int
    size: tuple[int, ...]
    num_classes: int
    train_size: int
    val_size: int = 0
    smallest_class: int = 0  # samples of the rarest class, training + validation


#: What a resumed search keeps from its first run (search.json), whatever the command says;
#: the rest (the budget, where it runs) may change on ``--resume``.
KEPT_ON_RESUME = ("dataset", "data_dir", "space", "objectives", "constraints", "max_params",
                  "max_macs", "max_latency_ms", "seed",
                  "sampler", "scheduler", "epochs", "grace_epochs", "val_fraction",
                  "folds", "warm_start", "checkpoint_uri")  # fmt: skip


@dataclass(frozen=True)
class SearchConfig:
    """Everything one ``nas search`` needs; saved as ``<workdir>/<name>/search.json``."""

    budget: Budget
    dataset: str
    data_dir: str | None
    space: str  # a shipped space name or a YAML path
    objectives: tuple[str, ...] = ("accuracy",)
    #: soft limits as ``--constraint`` wrote them (``latency<=2ms``), :func:`parse_constraint`
    constraints: tuple[str, ...] = ()
    max_params: int | None = None
    max_macs: int | None = None
    max_latency_ms: float | None = None  # a hard limit, applied on the worker (it measures)
    name: str = DEFAULT_NAME
    workdir: Path = Path(DEFAULT_WORKDIR)
    resume: bool = False
    seed: int = 0
    sampler: str = "tpe"
    scheduler: str = "asha"
    epochs: int | None = None  # fixes the fidelity: most epochs a trial trains (ASHA's max_t)
    grace_epochs: int | None = None  # with epochs: fewest epochs before ASHA may stop a trial
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    storage: str = field(default="", repr=False)  # live URLs, with any password: never shown
    tracking_uri: str = field(default="", repr=False)
    ray_address: str | None = None
    checkpoint_uri: str | None = None  # where Ray keeps trial checkpoints (every node reaches it)
    val_fraction: float = VAL_FRACTION
    folds: int | None = (
        None  # k-fold evaluation: None decides from the data size (nas.driver.plan.folds_for)
    )
    warm_start: str = "zoo"  # none | zoo | the name of another study in the same storage
    data: DataInfo | None = field(default=None, compare=False)

    @property
    def study_dir(self) -> Path:
        """Per-study files: search.json, retrains, exports."""
        return self.workdir / self.name

    @property
    def checkpoint_root(self) -> str:
        """Ray Tune's storage path: ``--checkpoint-uri``, else ``<workdir>/ray`` (fine on one
        machine, and on a cluster whose nodes all mount the workdir)."""
        return self.checkpoint_uri or str((self.workdir / "ray").resolve())

    @property
    def experiment_path(self) -> str:
        """Ray Tune's experiment of this study (a path or a URI)."""
        return f"{self.checkpoint_root.rstrip('/')}/{self.name}"

    @property
    def metrics(self) -> list[str]:
        """Reported metric per objective, in objective order."""
        return [OBJECTIVES[o][0] for o in self.objectives]

    @property
    def modes(self) -> list[str]:
        """``max`` / ``min`` per objective."""
        return [OBJECTIVES[o][1] for o in self.objectives]

    @property
    def latency_ranked(self) -> bool:
        """True when an objective or a constraint is the latency: trials measure it before
        training, so that every report carries it."""
        limited = {parse_constraint(text)[0] for text in self.constraints}
        return "latency" in self.objectives or "latency" in limited or bool(self.max_latency_ms)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def to_json(self) -> dict[str, Any]:
        """JSON form for search.json and the search's MLflow run (budget by its text, paths
        as strings, store URLs with their passwords masked: :mod:`nas.core.credentials`)."""
        d = asdict(self)
        d["budget"] = self.budget.text
        d["workdir"] = str(self.workdir)
        d["objectives"] = list(self.objectives)
        d["constraints"] = list(self.constraints)
        for key in ("storage", "tracking_uri", "checkpoint_uri"):
            d[key] = mask_url(d[key])
        d.pop("resume")
        return d


def default_storage(workdir: Path) -> str:
    return sqlite_url(workdir / "optuna.db")


def default_tracking_uri(workdir: Path) -> str:
    return sqlite_url(workdir / "mlflow.db")


def search_storage(workdir: Path, name: str, given: str | None = None) -> str | None:
    """The Optuna storage of the search ``name`` of ``workdir``: ``given`` (a flag), else
    the one its search.json recorded, with its password from ``$NAS_STORAGE`` where it was
    masked; None where there is no such search."""
    recorded = ((load_saved(workdir, name) or {}).get("config") or {}).get("storage") or None
    return _live(recorded, given, "--storage", "NAS_STORAGE")


def search_tracking_uri(workdir: Path, name: str, given: str | None = None) -> str | None:
    """The MLflow tracking URI of the search ``name`` of ``workdir``, as
    :func:`search_storage` finds its storage (``$MLFLOW_TRACKING_URI`` for a password)."""
    saved = (load_saved(workdir, name) or {}).get("config") or {}
    return _live(saved.get("tracking_uri") or None, given, "--tracking-uri", "MLFLOW_TRACKING_URI")


def _live(recorded: str | None, given: str | None, flag: str, variable: str) -> str | None:
    if given or not is_masked(recorded):
        return given or recorded
    live = unmask(recorded, os.environ.get(variable), flag, variable)
    register(live)
    return live


#: Version of ``search.json``; files without one (before 0.2) are read as version 0.
SEARCH_STATE_VERSION = 1
SEARCH_STATE = "search.json"


def save_state(
    cfg: SearchConfig, spent: float, status: str, plan: dict[str, Any] | None = None
) -> None:
    """Write ``<workdir>/<name>/search.json`` atomically: the config, the budget spent and
    the fidelity plan (:class:`nas.driver.plan.Plan`, kept by ``--resume``)."""
    from workers.files import atomic_write

    payload = {
        "version": SEARCH_STATE_VERSION,
        "config": cfg.to_json(),
        "spent": spent,
        "status": status,
        "updated": time.time(),
    }
    if plan is not None:
        payload["plan"] = plan
    text = json.dumps(payload, indent=2, default=str)
    atomic_write(cfg.study_dir / SEARCH_STATE, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def load_saved(workdir: Path, name: str) -> dict[str, Any] | None:
    """The search.json of an earlier run of this study, or None; a UsageError for a file
    this version cannot read (damaged, or written by a newer version)."""
    path = workdir / name / SEARCH_STATE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: damaged search state ({exc}); it is not JSON") from None
    version = saved.get("version", 0) if isinstance(saved, dict) else None
    if not isinstance(version, int) or not 0 <= version <= SEARCH_STATE_VERSION:
        raise UsageError(
            f"{path}: search state version {version!r}, this nas reads versions 0 to "
            f"{SEARCH_STATE_VERSION} (upgrade nas)"
        )
    return saved
