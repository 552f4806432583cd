"""The search's Optuna storage: RDB storage that waits out a database restart.

A database server can restart under a search of hours (maintenance, a failover). Pooled
connections are tested before use (``pool_pre_ping``), so a restart between two calls costs
a reconnect; a call made while the server is down is retried with back-off for up to
:func:`patience_s` seconds (``NAS_DB_PATIENCE_S``, default 120). Meanwhile Ray's trials go on
training; the search only waits to record them. A database that stays down raises
:class:`DatabaseUnavailable`, which ends the search with one line; ``--resume`` continues
once the database is back (docs/RELIABILITY.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy.exc

from nas.config import SearchConfig
from nas.errors import causes

#: Optuna's documented ``BaseStorage`` API, which :class:`PatientStorage` passes on.
_DATA_METHODS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
    "get_study_user_attrs", "get_study_system_attrs", "get_all_studies", "create_new_trial",
    "set_trial_param", "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id",
    "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value",
    "set_trial_user_attr", "set_trial_system_attr", "get_trial", "get_all_trials",
    "get_n_trials", "get_best_trial", "get_trial_params", "get_trial_user_attrs",
    "get_trial_system_attrs", "check_trial_is_updatable", "remove_session",
)  # fmt: skip


class DatabaseUnavailable(Exception):
    """The Optuna database did not answer for longer than :func:`patience_s`."""


def patience_s() -> float:
    """Seconds a storage call waits for a database that went away."""
    return float(os.environ.get("NAS_DB_PATIENCE_S", "120"))


def _connection_lost(exc: BaseException) -> bool:
    """True when ``exc`` (or its cause) is a lost or refused database connection (not a
    bad query, not a full disk)."""
    for cause in causes(exc):
        if isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return "disk is full" not in str(cause)
    return False


def unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """The :class:`DatabaseUnavailable` in ``exc``'s chain (Ray may wrap it), if any."""
    return next((c for c in causes(exc) if isinstance(c, DatabaseUnavailable)), None)


def _patient(name: str) -> Callable[..., Any]:
    def call(self: PatientStorage, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.inner, name)
        deadline, delay = None, 0.5
        while True:
            try:
                return method(*args, **kwargs)
            except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
                if not _connection_lost(exc):
                    raise
                now = time.monotonic()
                # once it gave up, the search is ending: its last writes fail fast
                deadline = deadline or now + (0.0 if self.gave_up else patience_s())
                if now >= deadline:
                    self.gave_up = True
                    raise DatabaseUnavailable(
                        f"the Optuna database did not answer for {patience_s():.0f} s "
                        f"({type(exc).__name__})"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    call.__name__ = name
    call.__doc__ = getattr(optuna.storages.BaseStorage, name).__doc__
    return call


class _Patient(optuna.storages.BaseStorage):
    """An Optuna storage that passes every call of the documented API on to ``inner`` (an
    :class:`optuna.storages.RDBStorage`) and waits out a database restart."""

    def __init__(self, inner: optuna.storages.RDBStorage) -> None:
        self.inner = inner
        self.gave_up = False  # set once a call gave up waiting


PatientStorage = type(
    "PatientStorage",
    (_Patient,),
    {name: _patient(name) for name in _DATA_METHODS} | {"__module__": __name__},
)


def rdb_storage(url: str, attempts: int = 3) -> optuna.storages.BaseStorage:
    """The search's storage of ``url`` (a :class:`PatientStorage`). Two processes that
    create the same new database at once race on its schema version row; the one that
    loses finds the schema made and simply opens it again."""
    engine = {} if url.startswith("sqlite") else {"pool_pre_ping": True, "pool_recycle": 300}
    for attempt in range(attempts - 1):
        try:
            return PatientStorage(optuna.storages.RDBStorage(url, engine_kwargs=engine))
        except sqlalchemy.exc.IntegrityError:
            time.sleep(0.2 * (attempt + 1))
    return PatientStorage(optuna.storages.RDBStorage(url, engine_kwargs=engine))


def open_study(cfg: SearchConfig, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """The study of ``cfg`` in its RDB storage (created on first use), with ``sampler``."""
    return optuna.create_study(
        study_name=cfg.name,
        storage=rdb_storage(cfg.storage),
        sampler=sampler,
        directions=["maximize" if m == "max" else "minimize" for m in cfg.modes],
        load_if_exists=True,
    )
