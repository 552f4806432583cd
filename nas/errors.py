"""User-facing errors: one clear line, exit code 2, no traceback."""

from __future__ import annotations


class UsageError(Exception):
    """Bad user input (a value, a path, a name). The CLI prints it as one line and exits 2.

    The message names the bad value and what is accepted, e.g.
    ``--budget 'banana': expected 90s, 30m, 2h, 50trials, 4gpu-h or 2cpu-h``.
    """


EXIT_USAGE = 2
