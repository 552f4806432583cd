"""Credentials in store URLs: recorded masked, never printed, asked for again on resume.

A password reaches a search in the Optuna storage URL (``--storage`` / ``NAS_STORAGE``,
``postgresql+psycopg://user:PASSWORD@host/db``), in the MLflow tracking URI
(``http://user:PASSWORD@host``) or in ``MLFLOW_TRACKING_PASSWORD``. The live URL stays in
the driver's memory; everything written or shown (search.json, MLflow params and artifacts,
console lines, errors, logs) carries :func:`mask_url`'s form, ``user:***@host``. A resumed
search, the leaderboard, retrain and export find the password again in the flag or the
environment (:func:`unmask`); when neither has it, one line says where to give it.

:func:`redact` and :class:`RedactingFilter` are the last line of defence for text that may
quote a URL (a driver's exception, a library's log record): every known password is
replaced by ``***``.
"""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import quote, unquote

from nas.core.errors import UsageError

MASK = "***"
#: Environment variables that may hold a store URL with a password, or a password itself.
URL_VARIABLES = ("NAS_STORAGE", "MLFLOW_TRACKING_URI")
PASSWORD_VARIABLES = ("MLFLOW_TRACKING_PASSWORD",)
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@]*):(?P<pw>[^@/]*)@")
_registered: set[str] = set()


def password_of(url: str | None) -> str | None:
    """The password in ``url``'s user info (percent-decoded), or None."""
    found = _USERINFO.match(url or "")
    if not found or not found["pw"] or found["pw"] == MASK:
        return None
    return unquote(found["pw"])


def mask_url(url: str | None) -> str | None:
    """``url`` with its password replaced by ``***`` (the user and the rest kept)."""
    if not url or password_of(url) is None:
        return url
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url, count=1)


def without_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` (for a link to open in a browser)."""
    return _USERINFO.sub(lambda m: m["scheme"], url, count=1)


def is_masked(url: str | None) -> bool:
    """True for a URL whose password was masked by :func:`mask_url`."""
    found = _USERINFO.match(url or "")
    return bool(found) and found["pw"] == MASK


def unmask(recorded: str | None, given: str | None, flag: str, variable: str) -> str | None:
    """The live URL of a store recorded as ``recorded`` (maybe masked).

    ``given`` is what the command has now (its flag, else ``$variable``); it wins, as a
    flag always did. Without it, a recorded URL whose password was masked cannot be used:
    :class:`UsageError` with one line saying where to give it again."""
    if given and not is_masked(given):
        return given
    if not is_masked(recorded):
        return recorded
    raise UsageError(
        f"{flag}: the search used {recorded}, whose password is not recorded; give the URL "
        f"with its password again with {flag} or ${variable}"
    )


def register(*urls_or_passwords: str | None) -> None:
    """Remember the passwords in these URLs (or these passwords) for :func:`redact`."""
    for value in urls_or_passwords:
        if not value:
            continue
        secret = password_of(value) if "://" in value else value
        if secret and len(secret) >= 3:
            _registered.add(secret)


def known_secrets() -> set[str]:
    """Every password this process knows of: registered ones and the environment's."""
    register(*(os.environ.get(v) for v in URL_VARIABLES))
    register(*(os.environ.get(v) for v in PASSWORD_VARIABLES))
    return set(_registered)


def redact(text: str) -> str:
    """``text`` with every known password (raw and percent-encoded) replaced by ``***``."""
    for secret in sorted(known_secrets(), key=len, reverse=True):
        for form in {secret, quote(secret, safe="")}:
            text = text.replace(form, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that removes known passwords from every record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.exc_info:
            record.msg, record.args = cleaned, None
            if record.exc_info:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


def guard_logging() -> None:
    """Install :class:`RedactingFilter` on the root logger's handlers present now and on
    ``logging.lastResort`` (what prints a record when no handler is configured)."""
    flt = RedactingFilter()
    for handler in (*logging.getLogger().handlers, logging.lastResort):
        if handler is not None and flt.__class__ not in {type(f) for f in handler.filters}:
            handler.addFilter(flt)
