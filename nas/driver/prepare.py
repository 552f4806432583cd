"""From CLI arguments to a validated :class:`~nas.core.config.SearchConfig`, writing nothing.

Each check raises :class:`~nas.core.errors.UsageError` with one line that names the bad value and
what is accepted; ``nas search`` then exits 2 and the workdir is untouched.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from nas.cluster.ray_cluster import probe_storage, resolve_checkpoint_uri
from nas.core.budget import Budget, parse_budget
from nas.core.config import (
    KEPT_ON_RESUME,
    NAME_RE,
    DataInfo,
    SearchConfig,
    check_writable,
    default_storage,
    default_tracking_uri,
    load_saved,
    parse_constraint,
    parse_count,
    parse_milliseconds,
    parse_objectives,
)
from nas.core.credentials import mask_url, redact, register, unmask
from nas.core.errors import UsageError
from nas.core.progress import task
from nas.driver.plan import DEFAULT_EPOCHS, DEFAULT_GRACE_EPOCHS

_STORAGE_SCHEMES = ("sqlite", "postgresql", "mysql")


def check_dataset_name(name: str, data_dir: str | None) -> None:
    """The cheap part of the dataset check: a known name or an existing path, an existing
    --data-dir. (Reading the files is :func:`probe_dataset`'s.)"""
    from workers.data import list_datasets

    if data_dir is not None and not Path(data_dir).is_dir():
        raise UsageError(f"--data-dir {data_dir!r}: no such folder")
    if name not in list_datasets() and not Path(name).exists():
        raise UsageError(
            f"--dataset {name!r}: not a known data set ({', '.join(list_datasets())}) "
            "and no such file or folder"
        )


def probe_dataset(name: str, data_dir: str | None, val_fraction: float, seed: int) -> DataInfo:
    """Load the dataset once in the driver (it is checked before any trial) and describe it."""
    import torch

    import workers

    check_dataset_name(name, data_dir)
    resolved_dir = str(Path(data_dir).resolve()) if data_dir else None
    resolved_name = str(Path(name).resolve()) if Path(name).exists() else name
    try:  # cached: the search hands this very dataset to its trials
        with task(f"loading {resolved_name}"):
            ds = workers.get_dataset(
                resolved_name, resolved_dir, val_fraction=val_fraction, seed=seed
            )
    except (ValueError, OSError) as exc:
        raise UsageError(f"--dataset {name!r}: {exc}") from None
    return DataInfo(
        name=resolved_name,
        data_dir=resolved_dir,
        dims=int(ds.dims),
        channels=int(ds.channels),
        size=tuple(int(s) for s in ds.size),
        num_classes=int(ds.num_classes),
        train_size=int(ds.train_y.shape[0]),
        val_size=int(ds.val_y.shape[0]),
        smallest_class=int(torch.bincount(torch.cat([ds.train_y, ds.val_y])).min()),
    )


def load_space_for(space: str | None, dims: int) -> tuple[str, Any]:
    """The space file (a shipped name or a YAML path), checked against the data's dims."""
    import search_spaces

    name = space or search_spaces.default_space_for(dims)
    try:
        loaded = search_spaces.load_space(name)
    except (ValueError, OSError) as exc:
        raise UsageError(f"--space {name!r}: {exc}") from None
    space_dims = tuple(getattr(loaded, "dims", None) or (dims,))
    if dims not in space_dims:
        accepted = "/".join(f"{d}D" for d in space_dims)
        raise UsageError(
            f"--space {name!r}: a {accepted} space cannot search {dims}D data "
            f"(try --space {search_spaces.default_space_for(dims)})"
        )
    return name, loaded


def _check_storage(url: str, flag: str) -> None:
    scheme = re.split(r"[+:]", url, maxsplit=1)[0]
    if scheme not in _STORAGE_SCHEMES:
        raise UsageError(
            f"{flag} {mask_url(url)!r}: expected an SQLAlchemy URL (sqlite:///FILE, postgresql://HOST/DB)"
        )


def _connect_storage(url: str) -> None:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except sqlalchemy.exc.SQLAlchemyError as exc:  # every driver error means the same here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--storage {mask_url(url)!r}: cannot connect ({redact(first)})") from None


def _stores(args: argparse.Namespace, kept: dict[str, Any], workdir: Path) -> tuple[str, str]:
    """(Optuna storage, MLflow tracking URI): the flags (or their environment variables),
    else what a resumed search recorded, else the workdir's SQLite files. A recorded URL
    has its password masked, so ``--resume`` needs it again (:func:`nas.core.credentials.unmask`);
    the passwords are registered so that no line this process prints shows them."""
    storage = unmask(kept.get("storage"), args.storage, "--storage", "NAS_STORAGE")
    tracking_uri = unmask(
        kept.get("tracking_uri"), args.tracking_uri, "--tracking-uri", "MLFLOW_TRACKING_URI"
    )
    register(storage, tracking_uri)
    return storage or default_storage(workdir), tracking_uri or default_tracking_uri(workdir)


def _study_exists(storage: str, name: str, ray_address: str | None) -> bool:
    """Whether ``storage`` (checked: a URL nas can use there, and one that answers) holds a
    study ``name``."""
    from nas.study.records import study_names

    _check_storage(storage, "--storage")
    if ray_address and storage.startswith("sqlite"):
        raise UsageError(
            f"--ray-address {ray_address!r}: a search over several nodes needs a shared Optuna "
            "database; pass --storage postgresql://HOST/DB (SQLite is for one machine)"
        )
    if not storage.startswith("sqlite"):
        _connect_storage(storage)
    return name in study_names(storage)


def prepare_search(
    args: argparse.Namespace, on_checked: Callable[[], None] | None = None
) -> tuple[SearchConfig, Any, float]:
    """Validate everything; return (config, loaded space, budget already spent).

    ``on_checked`` is called once only the slow part is left (loading the dataset and the
    space), so the caller can start Ray meanwhile.
    """
    name = args.name
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"--name {name!r}: expected letters, digits, '_', '-' or '.', at most 64 characters"
        )
    workdir = Path(args.workdir).expanduser()
    check_writable(workdir)
    saved = load_saved(workdir, name)
    # --resume goes on in the stores the search started in, unless told otherwise
    kept = (saved or {}).get("config", {}) if args.resume else {}
    storage, tracking_uri = _stores(args, kept, workdir)
    exists = _study_exists(storage, name, args.ray_address)
    spent = 0.0
    if args.resume:
        if not exists or saved is None:
            raise UsageError(
                f"--resume: no search named {name!r} in {str(workdir)!r} to resume (start one without --resume)"
            )
        spent = float(saved.get("spent", 0.0))
        budget, overrides = _resumed_settings(args, saved["config"])
    else:
        if exists or saved is not None:
            raise UsageError(
                f"--name {name!r}: a search of that name already exists in {str(workdir)!r}; "
                "continue it with --resume or pick another --name"
            )
        budget, overrides = _fresh_settings(args)
        _check_warm_start(overrides["warm_start"], name, storage)
    _check_numbers(args, overrides)
    _check_checkpoint_uri(overrides["checkpoint_uri"])
    check_dataset_name(overrides["dataset"], overrides["data_dir"])
    if on_checked is not None:
        on_checked()
    data = probe_dataset(
        overrides["dataset"], overrides["data_dir"], overrides["val_fraction"], overrides["seed"]
    )
    _check_folds(overrides.get("folds"), data)
    space_name, space = load_space_for(overrides["space"], data.dims)
    cfg = SearchConfig(
        budget=budget,
        dataset=overrides["dataset"],
        data_dir=overrides["data_dir"],
        space=space_name,
        objectives=tuple(overrides["objectives"]),
        constraints=tuple(overrides.get("constraints") or ()),
        max_params=overrides["max_params"],
        max_macs=overrides["max_macs"],
        max_latency_ms=overrides.get("max_latency_ms"),
        name=name,
        workdir=workdir.resolve(),
        resume=args.resume,
        seed=overrides["seed"],
        sampler=overrides["sampler"],
        scheduler=overrides["scheduler"],
        epochs=overrides["epochs"],
        grace_epochs=overrides["grace_epochs"],
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=_gpus(args, budget),
        max_concurrent=args.max_concurrent,
        storage=storage,
        tracking_uri=tracking_uri,
        ray_address=args.ray_address,
        checkpoint_uri=overrides["checkpoint_uri"],
        val_fraction=overrides["val_fraction"],
        folds=overrides.get("folds"),
        warm_start=overrides.get("warm_start") or "none",
    )
    return replace(cfg, data=data), space, spent


def _gpus(args: argparse.Namespace, budget: Budget) -> float:
    """GPUs per trial: ``--gpus-per-trial``, else one where the driver sees CUDA; a GPU-hour
    budget needs trials that hold one."""
    gpus = args.gpus_per_trial if args.gpus_per_trial is not None else _default_gpus()
    if budget.device == "gpu" and gpus <= 0:
        raise UsageError(
            f"--budget {budget.text!r}: trials hold no GPU here (--gpus-per-trial {gpus:g}); "
            "use a cpu-h or wall-clock budget, or give trials GPUs"
        )
    return gpus


def _resumed_settings(
    args: argparse.Namespace, previous: dict[str, Any]
) -> tuple[Budget, dict[str, Any]]:
    """(budget, kept settings) of ``--resume``: the budget may grow, not change kind."""
    old = parse_budget(previous["budget"])
    new = parse_budget(args.budget) if args.budget else old
    if args.budget:
        if new.kind != old.kind:
            raise UsageError(
                f"--budget {args.budget!r}: on --resume the budget keeps its kind (was {previous['budget']!r})"
            )
        if new.kind == "trials" and new != old:
            raise UsageError(
                f"--budget {args.budget!r}: a trial budget cannot change on --resume (was {previous['budget']!r})"
            )
    kept = {k: previous.get(k) for k in KEPT_ON_RESUME}
    if (
        args.checkpoint_uri
        and resolve_checkpoint_uri(args.checkpoint_uri) != kept["checkpoint_uri"]
    ):
        raise UsageError(
            f"--checkpoint-uri {args.checkpoint_uri!r}: on --resume the checkpoints stay where "
            f"the search put them ({kept['checkpoint_uri'] or 'the workdir'})"
        )
    return new, kept


def _fresh_settings(args: argparse.Namespace) -> tuple[Budget, dict[str, Any]]:
    """(budget, settings) of a new search, from the command line."""
    if not args.budget:
        raise UsageError(
            "--budget: required (e.g. --budget 30m, --budget 50trials, --budget 2cpu-h)"
        )
    grace = args.grace_epochs
    if grace is None and args.epochs is not None:
        grace = min(DEFAULT_GRACE_EPOCHS, args.epochs)
    elif grace is not None and args.epochs is None:
        raise UsageError(
            f"--grace-epochs {grace}: give it with --epochs (e.g. --epochs {DEFAULT_EPOCHS})"
        )
    return parse_budget(args.budget), {
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "space": args.space,
        "objectives": list(parse_objectives(args.objective)),
        "constraints": _constraints(args),
        "max_params": parse_count("--max-params", args.max_params),
        "max_macs": parse_count("--max-macs", args.max_macs),
        "max_latency_ms": parse_milliseconds(
            "--max-latency-ms", getattr(args, "max_latency_ms", None)
        ),
        "seed": args.seed,
        "sampler": args.sampler,
        "scheduler": args.scheduler,
        "epochs": args.epochs,
        "grace_epochs": grace,
        "val_fraction": args.val_fraction,
        "folds": args.folds,
        "warm_start": args.warm_start,
        "checkpoint_uri": resolve_checkpoint_uri(args.checkpoint_uri)
        if args.checkpoint_uri
        else None,
    }


#: the samplers that read the trials' Optuna constraints
CONSTRAINED_SAMPLERS = ("tpe", "local", "nsga2")


def _constraints(args: argparse.Namespace) -> list[str]:
    """``--constraint`` as given, each checked (:func:`parse_constraint`), one per cost."""
    given = list(getattr(args, "constraint", None) or [])
    costs = [parse_constraint(text)[0] for text in given]
    if given and args.sampler not in CONSTRAINED_SAMPLERS:
        raise UsageError(
            f"--constraint {given[0]!r}: --sampler {args.sampler} takes no constraints; use "
            f"{', '.join(CONSTRAINED_SAMPLERS)}"
        )
    repeated = sorted({c for c in costs if costs.count(c) > 1})
    if repeated:
        raise UsageError(f"--constraint: {repeated[0]} is limited twice; give one limit per cost")
    return given


def _check_checkpoint_uri(uri: str | None) -> None:
    """The driver itself writes Ray's experiment state there: it must write and read it
    (the cluster's nodes are checked once Ray is connected, :func:`check_nodes_reach`)."""
    if uri is None:
        return
    problem = probe_storage(uri)
    if problem:
        raise UsageError(
            f"--checkpoint-uri {mask_url(uri)!r}: cannot write and read there ({problem})"
        )


def _check_warm_start(value: str, name: str, storage: str) -> None:
    """``none``, ``zoo`` or another study of the same storage."""
    from nas.study.records import study_names

    if value in ("none", "zoo"):
        return
    studies = [s for s in study_names(storage) if s != name]
    if value not in studies:
        known = ", ".join(sorted(studies)) or "none"
        raise UsageError(
            f"--warm-start {value!r}: expected none, zoo or the name of another search in "
            f"{mask_url(storage)} (searches there: {known})"
        )


def _check_folds(folds: int | None, data: DataInfo) -> None:
    """``--folds K``: every class must appear in each of the K folds."""
    if folds is None or folds == 1:
        return
    if not 2 <= folds <= data.smallest_class:
        raise UsageError(
            f"--folds {folds}: expected 1 or 2..{data.smallest_class} (each fold holds every "
            f"class; the rarest class of {data.name} has {data.smallest_class} samples)"
        )


def _check_numbers(args: argparse.Namespace, o: dict[str, Any]) -> None:
    if o["epochs"] is not None and o["epochs"] < 1:
        raise UsageError(f"--epochs {o['epochs']}: expected an integer >= 1")
    if o["epochs"] is not None and not 1 <= o["grace_epochs"] <= o["epochs"]:
        raise UsageError(
            f"--grace-epochs {o['grace_epochs']}: expected 1..--epochs ({o['epochs']})"
        )
    if not 0.0 < o["val_fraction"] < 0.9:
        raise UsageError(f"--val-fraction {o['val_fraction']}: expected a fraction in (0, 0.9)")
    if not args.cpus_per_trial > 0:
        raise UsageError(f"--cpus-per-trial {args.cpus_per_trial}: expected a number > 0")
    if args.gpus_per_trial is not None and args.gpus_per_trial < 0:
        raise UsageError(
            f"--gpus-per-trial {args.gpus_per_trial}: expected a number >= 0 (fractions allowed)"
        )
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise UsageError(f"--max-concurrent {args.max_concurrent}: expected an integer >= 1")


def _default_gpus() -> float:
    """One GPU per trial where the driver sees CUDA, else none."""
    import torch

    return 1.0 if torch.cuda.is_available() else 0.0
