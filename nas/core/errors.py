"""User-facing errors: one clear line, exit code 2, no traceback."""

from __future__ import annotations

from collections.abc import Iterator


class UsageError(ValueError):
    """Bad user input (a value, a path, a name). The CLI prints it as one line and exits 2;
    the Python API (:mod:`nas.api`) raises it (a ``ValueError``) with the same message.

    The message names the bad value and what is accepted, e.g.
    ``--budget 'banana': expected 90s, 30m, 2h, 50trials, 4gpu-h or 2cpu-h``.
    """


EXIT_USAGE = 2


def causes(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and what caused it (``__cause__``, else ``__context__``), outermost first:
    libraries (Ray, Optuna, MLflow, SQLAlchemy) wrap the error that tells what happened."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__
