"""The ``nas`` command line: one sub-command per module in :mod:`nas.commands`.

Each command module exposes ``add_parser(subparsers)`` and ``run(args) -> int``. Modules are
imported lazily so that ``nas --help`` and cheap commands do not pay for torch / Ray / MLflow.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import traceback
from collections.abc import Sequence

from nas.core.credentials import guard_logging, redact
from nas.core.errors import EXIT_USAGE, UsageError

# name -> one-line help; the module is nas.commands.<name>
COMMANDS: dict[str, str] = {
    "search": "sample and evaluate architectures under a budget",
    "leaderboard": "show the trials of a search without running anything",
    "train": "train one architecture spec (no Ray, no tracking)",
    "arch": "inspect an architecture spec (parameters, MACs, shapes)",
    "space": "check a search-space file",
    "retrain": "retrain the best (or a chosen) architecture of a search",
    "export": "export a retrained model to ONNX / TorchScript, verified and registered",
    "predict": "classify inputs with an exported model",
    "ui": "open the MLflow UI on a search's runs and print the link to its trials",
}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written and adds ``(default: X)`` to an option's help when the
    help does not say its default already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False
        shown = not unset and action.default is not argparse.SUPPRESS and action.nargs != 0
        if shown and "default" not in text and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """argparse whose bad-argument errors are :class:`UsageError` (one line, exit code 2 in
    the CLI; raised as they are by the Python API)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["formatter_class"] = _HelpFormatter  # every command's help shows its defaults
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def version() -> str:
    """The installed package's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("nas-catalog")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every available command registered."""
    parser = _Parser(
        prog="nas",
        description="Neural-architecture search over classic CNN blocks.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"nas {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"nas.commands.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nas`` console script. No line it prints shows a password
    (:mod:`nas.core.credentials`): errors, log records and tracebacks are redacted."""
    guard_logging()
    try:
        parser = build_parser()
        args = parser.parse_args(
            _join_negative_values(sys.argv[1:] if argv is None else list(argv))
        )
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's exit
        return code
    except UsageError as exc:
        print(f"nas: error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("nas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _closed_pipe()
    except Exception:  # noqa: BLE001 (a bug: its traceback, any password it quotes masked)
        print(redact(traceback.format_exc()), end="", file=sys.stderr)
        return 1


def _closed_pipe() -> int:
    """The reader of our output went away (``nas leaderboard | head``): stop quietly, as
    ``cat`` does. Python would otherwise print a traceback when it flushes stdout at exit,
    so stdout is pointed at /dev/null first."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141  # 128 + SIGPIPE, what a shell reports for a command its pipe closed


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--budget -5m`` -> ``--budget=-5m``, so a negative value reaches our validation and
    gets a message naming it, instead of argparse's "expected one argument"."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and re.match(r"-\d", token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


if __name__ == "__main__":
    sys.exit(main())
