"""The ``nas`` command line: one sub-command per module in :mod:`nas.commands`.

Each command module exposes ``add_parser(subparsers)`` and ``run(args) -> int``. Modules are
imported lazily so that ``nas --help`` and cheap commands do not pay for torch / Ray / MLflow.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence

from nas.errors import EXIT_USAGE, UsageError

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
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line with exit code 2 (its default)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"nas: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every available command registered."""
    parser = _Parser(prog="nas", description="Neural-architecture search over classic CNN blocks.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"nas.commands.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nas`` console script."""
    parser = build_parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"nas: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("nas: interrupted", file=sys.stderr)
        return 130


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
