"""``nas arch summary SPEC``: parameters, MACs, activation memory and per-layer output shapes.

SPEC is a spec file (.json / .yaml) or a zoo name (``resnet18``, see ``search_spaces/zoo``).
The table lists every leaf layer; ``--json`` prints ``{"name", "spec_id", "input_shape",
"params", "macs", "activation_bytes", "layers"}`` with integer counts. Exit 0, or 2 for bad
input (an unknown name, an unreadable or invalid spec, a bad ``--input`` / ``--classes``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nas.core.arch_summary import table
from nas.core.errors import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``nas arch`` and its ``summary`` sub-command."""
    parser = subparsers.add_parser(
        "arch",
        help="inspect an architecture spec (parameters, MACs, shapes)",
        description="Inspect architecture specs (search_spaces/SPEC.md).",
    )
    sub = parser.add_subparsers(dest="arch_command", metavar="SUBCOMMAND")
    sub.required = True
    summary = sub.add_parser(
        "summary",
        help="print layers, output shapes, parameters and MACs of a spec",
        description="Print a table of layers (output shape, parameters, MACs) and totals.",
    )
    summary.add_argument("spec", metavar="SPEC", help="a spec file (.json/.yaml) or a zoo name")
    summary.add_argument(
        "--input", default=None, help="input shape CxHxW (C, CxL, CxDxHxW); default: the spec's"
    )
    summary.add_argument("--classes", default="1000", help="number of classes (default 1000)")
    summary.add_argument("--json", action="store_true", help="print JSON instead of a table")
    summary.set_defaults(func=run)
    parser.set_defaults(func=run)


def _load(text: str) -> dict:
    """The canonical spec from a file path or a zoo name; UsageError otherwise."""
    import search_spaces

    path = Path(text)
    try:
        if path.suffix in (".json", ".yaml", ".yml") or path.exists():
            if not path.is_file():
                raise UsageError(f"SPEC {text!r}: no such file")
            return search_spaces.load_spec(path)
        if text in search_spaces.list_zoo():
            return search_spaces.load_zoo(text)
    except search_spaces.SpecError as exc:
        raise UsageError(f"SPEC {text!r}: {exc}") from None
    raise UsageError(
        f"SPEC {text!r}: expected a .json/.yaml spec file or a zoo name "
        f"({', '.join(search_spaces.list_zoo())})"
    )


def _classes(text: Any) -> int:
    try:
        value = int(str(text))
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"--classes {text!r}: expected an integer >= 1")
    return value


def _input(text: str | None, spec: dict) -> list[int] | None:
    if text is None:
        return None
    dims, channels = spec["input"]["dims"], spec["input"]["channels"]
    accepted = f"{channels}x" + "x".join(["32"] * dims) + f" ({channels} channels, {dims} sizes)"
    try:
        shape = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise UsageError(f"--input {text!r}: expected {accepted}") from None
    if len(shape) != dims + 1 or shape[0] != channels or min(shape) < 1:
        raise UsageError(f"--input {text!r}: expected {accepted}")
    return shape


def run(args: argparse.Namespace) -> int:
    """Run ``nas arch summary``; see the module docstring."""
    import search_spaces

    spec = _load(args.spec)
    classes = _classes(args.classes)
    shape = _input(args.input, spec)
    try:
        report = search_spaces.count(spec, classes, shape)
    except search_spaces.SpecError as exc:
        raise UsageError(f"--input {args.input!r}: {exc}") from None
    sid = search_spaces.spec_id(spec)
    if args.json:
        print(json.dumps({"name": spec["name"], "spec_id": sid, **report.to_dict()}, indent=2))
    else:
        print(table(spec["name"], sid, report))
    return 0
