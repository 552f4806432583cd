"""What MLflow could not take while its server was away: the search's events, kept in a local
JSON-lines file (``<workdir>/<name>/mlflow-spool.jsonl``) and sent again, in order, once the
server answers; a later ``nas search --resume`` sends what is left (docs/RELIABILITY.md).

Trials never wait for MLflow: an event that cannot be sent is written to the spool, and so
is every later one until the spool is sent (order matters: a trial's run is created before
its metrics). Sending is tried again every :data:`RETRY_S` seconds.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.study import events
from nas.study.status_table import TrialStatus
from workers.files import atomic_write
from workers.trial import TrialConfig

#: Seconds between two tries to send the spool while the server is away.
RETRY_S = 10.0
_TYPES = {
    cls.__name__: cls
    for cls in (
        events.TrialStarted,
        events.TrialRecovered,
        events.EpochReported,
        events.TrialEnded,
        events.TrialReused,
        events.TrialNeverRan,
        events.TrialRejected,
        events.TrialCancelled,
        events.TrialLost,
    )
}


def unreachable(exc: BaseException) -> bool:
    """True when ``exc`` says the tracking server did not answer (refused, timed out, or
    answered 5xx), as opposed to a request it refused (bad value, no permission)."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, MlflowException):
        text = str(exc)
        lost = ("Max retries exceeded", "Connection refused", "timed out", "Failed to establish")
        return any(s in text for s in lost) or exc.get_http_status_code() >= 500
    try:
        import requests
    except ImportError:  # pragma: no cover - MLflow depends on requests
        return False
    return isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout)


def encode(event: Any) -> str:
    """One JSON line for an event of :mod:`nas.study.events` (a trial's config as the dict
    Ray carries, :meth:`TrialConfig.to_dict`)."""
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    if isinstance(fields.get("config"), TrialConfig):
        fields["config"] = fields["config"].to_dict()
    return json.dumps({"event": type(event).__name__, "fields": fields}, default=str)


def decode(line: str) -> Any:
    """The event :func:`encode` wrote."""
    data = json.loads(line)
    fields = data["fields"]
    if "status" in fields:
        fields["status"] = TrialStatus(fields["status"])
    if isinstance(fields.get("config"), dict):
        fields["config"] = TrialConfig.from_dict(fields["config"])
    return _TYPES[data["event"]](**fields)


class Spool:
    """Sends events through ``send``; keeps (in ``path``) those it could not, in order."""

    def __init__(self, path: Path, send: Callable[[Any], None]) -> None:
        self.path = path
        self.send = send
        self.pending: list[Any] = []
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            self.pending = [decode(line) for line in text.splitlines() if line.strip()]
        self._tried = 0.0

    def handle(self, event: Any) -> None:
        """Send ``event`` (after what is pending), or keep it."""
        if type(event).__name__ not in _TYPES:
            return
        if self.pending and time.monotonic() - self._tried >= RETRY_S:
            self.flush()
        if not self.pending:
            try:
                self.send(event)
                return
            except Exception as exc:
                if not unreachable(exc):
                    raise
                self._tried = time.monotonic()
        self.pending.append(event)
        self._save()

    def flush(self) -> int:
        """Send what is pending, in order, until the server fails again; how many are left."""
        self._tried = time.monotonic()
        sent = 0
        try:
            for event in self.pending:
                self.send(event)
                sent += 1
        except Exception as exc:
            if not unreachable(exc):
                raise
        if sent:
            self.pending = self.pending[sent:]
            self._save()
        return len(self.pending)

    def _save(self) -> None:
        if not self.pending:
            self.path.unlink(missing_ok=True)
            return
        text = "".join(encode(e) + "\n" for e in self.pending)
        atomic_write(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
