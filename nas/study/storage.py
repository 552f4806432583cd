"""The search's Optuna storage: RDB storage that waits out a database restart, read through
Optuna's own cache of finished trials.

A database server can restart under a search of hours (maintenance, a failover). A pooled
connection that a restart broke fails its next call, which is made again on a new
connection (SQLAlchemy drops the pool's connections of before the restart); a connection
opened while the server is down is retried with back-off for up to :func:`patience_s`
seconds (``NAS_DB_PATIENCE_S``, default 120), and so is a call of Optuna's storage API
that lost its connection. Connections are not pinged before each use (``pool_pre_ping``):
that cost each of the fifty-odd calls a trial makes an extra round trip. Meanwhile Ray's
trials go on training; the search only waits to record them. A database that stays down
raises :class:`DatabaseUnavailable`, which ends the search with one line; ``--resume``
continues once the database is back (docs/RELIABILITY.md).

:class:`PatientStorage` is an :class:`optuna.storages.RDBStorage`, so
:func:`optuna.create_study` puts Optuna's cache in front of it, as it does for a URL: a
finished trial is read from the database once, and each later read fetches only trials that
are new or still running (safe with several drivers on one study, and on resume). A wrapper
that merely delegated to ``RDBStorage`` lost that cache, and every configuration cost the
driver a full read of the study, several times (5 s per trial by trial 40; issue #30).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.exc

from nas.core.config import SearchConfig
from nas.core.errors import causes

#: Optuna's documented ``RDBStorage`` API whose calls wait for a database that went away.
_DATA_METHODS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
    "get_study_user_attrs", "get_study_system_attrs", "get_all_studies", "create_new_trial",
    "set_trial_param", "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id",
    "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value",
    "set_trial_user_attr", "set_trial_system_attr", "get_trial", "get_all_trials",
    "get_n_trials", "get_best_trial", "get_trial_params", "get_trial_user_attrs",
    "get_trial_system_attrs", "check_trial_is_updatable",
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


class _Waiting:
    """Back-off until a deadline shared by one call: ``wait(exc)`` sleeps or gives up."""

    def __init__(self, storage: PatientStorage) -> None:
        self.storage = storage
        self.deadline: float | None = None
        self.delay = 0.5

    def wait(self, exc: BaseException) -> None:
        now = time.monotonic()
        # once it gave up, the search is ending: its last writes fail fast
        self.deadline = self.deadline or now + (0.0 if self.storage.gave_up else patience_s())
        if now >= self.deadline:
            self.storage.gave_up = True
            raise DatabaseUnavailable(
                f"the Optuna database did not answer for {patience_s():.0f} s "
                f"({type(exc).__name__})"
            ) from exc
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, 5.0)


def _patient(name: str) -> Callable[..., Any]:
    method = getattr(optuna.storages.RDBStorage, name)

    def call(self: PatientStorage, *args: Any, **kwargs: Any) -> Any:
        waiting = _Waiting(self)
        while True:
            try:
                return method(self, *args, **kwargs)
            except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
                if not _connection_lost(exc):
                    raise
                waiting.wait(exc)

    call.__name__ = name
    call.__doc__ = method.__doc__
    return call


class _Patient(optuna.storages.RDBStorage):
    """RDB storage whose connections are opened patiently (see the module's docstring)."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.gave_up = False  # set once a call gave up waiting
        super().__init__(url, **kwargs)
        sqlalchemy.event.listen(self.engine, "do_connect", self._connect)

    def _connect(self, dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        """Open a DBAPI connection, waiting out a server that is down or restarting."""
        waiting = _Waiting(self)
        while True:
            try:
                return dialect.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.OperationalError as exc:
                waiting.wait(exc)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        sqlalchemy.event.listen(self.engine, "do_connect", self._connect)


PatientStorage = type(
    "PatientStorage",
    (_Patient,),
    {name: _patient(name) for name in _DATA_METHODS} | {"__module__": __name__},
)


def rdb_storage(url: str, attempts: int = 5) -> PatientStorage:
    """The storage of ``url`` (a :class:`PatientStorage`) for every nas command. Processes
    that create the same new database at once (a team's first searches on a new server)
    race on its schema: its types, tables and version row; the ones that lose find the
    schema made and simply open it again."""
    engine = {} if url.startswith("sqlite") else {"pool_recycle": 300}
    for attempt in range(attempts - 1):
        try:
            return PatientStorage(url, engine_kwargs=engine)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            time.sleep(0.2 * (attempt + 1))
    return PatientStorage(url, engine_kwargs=engine)


def open_study(
    cfg: SearchConfig, sampler: optuna.samplers.BaseSampler
) -> tuple[optuna.Study, PatientStorage]:
    """(the study of ``cfg`` in its RDB storage, created on first use, with ``sampler``;
    that storage, behind the cache Optuna puts in front of it)."""
    storage = rdb_storage(cfg.storage)
    study = optuna.create_study(
        study_name=cfg.name,
        storage=storage,
        sampler=sampler,
        directions=["maximize" if m == "max" else "minimize" for m in cfg.modes],
        load_if_exists=True,
    )
    return study, storage
