"""``nas train SPEC --dataset NAME|PATH --epochs N``: train one architecture spec, no Ray, no
tracking, and report validation and test accuracy.

Training settings come from the spec file's optional ``train:`` section (the
docs/INTERFACES.md settings dict), else the defaults of :class:`workers.TrainSettings`;
``--lr``, ``--batch-size``, ``--optimizer`` and ``--augment`` override them. One progress
line per epoch goes to stderr; ``--json`` prints the result on stdout: ``status, reason,
val_acc, val_loss, test_acc, train_images_per_s, epochs, seconds, params, spec_id,
dataset, settings, history``. Exit 0 when training finished, 1 when the trial failed
(diverged / oom / invalid), 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from nas.core.errors import UsageError
from workers.trial import VAL_FRACTION


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``nas train``."""
    p = subparsers.add_parser(
        "train",
        help="train one architecture spec (no Ray, no tracking)",
        description="Train one architecture spec on a data set and report validation and "
        "test accuracy. Settings come from the spec file's train: section, else defaults.",
    )
    p.add_argument("spec", metavar="SPEC", help="architecture spec file (.yaml / .json)")
    p.add_argument(
        "--dataset",
        required=True,
        help="a data set name (digits, mnist, fashion-mnist, cifar10, cifar100) or a path",
    )
    p.add_argument("--data-dir", default=None, help="folder holding the named data set's files")
    p.add_argument("--epochs", required=True, help="number of epochs (integer >= 1)")
    p.add_argument("--seed", default="0", help="random seed (default 0)")
    p.add_argument("--lr", default=None, help="override the peak learning rate")
    p.add_argument("--batch-size", default=None, help="override the batch size")
    p.add_argument(
        "--optimizer", default=None, help="override the optimizer: sgd, adam, adamw, rmsprop"
    )
    p.add_argument("--augment", default=None, help="override the augmentation strength in [0, 1]")
    p.add_argument(
        "--val-fraction",
        default=str(VAL_FRACTION),
        help=f"validation share of the training data (default {VAL_FRACTION})",
    )
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda[:N]")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=run)


def _number(option: str, text: str, kind: type, low: float, *, strict: bool = False) -> Any:
    accepted = f"{'an integer' if kind is int else 'a number'} {'>' if strict else '>='} {low}"
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise UsageError(f"{option} {text!r}: expected {accepted}") from None
    if value < low or (strict and value == low):
        raise UsageError(f"{option} {text!r}: expected {accepted}")
    return value


def read_spec_file(path: Path) -> tuple[dict, dict]:
    """(spec dict, train-settings dict) from a spec file with an optional ``train:`` section."""
    import yaml

    if not path.is_file():
        raise UsageError(f"SPEC {str(path)!r}: no such file, expected a .yaml or .json spec file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"SPEC {str(path)!r}: not YAML/JSON ({line})") from None
    if not isinstance(data, dict):
        raise UsageError(f"SPEC {str(path)!r}: expected a mapping (an architecture spec)")
    train_section = data.pop("train", None) or {}
    if not isinstance(train_section, dict):
        raise UsageError(f"SPEC {str(path)!r}: train: must be a mapping of training settings")
    return data, train_section


def _settings(args: argparse.Namespace, section: dict) -> Any:
    from workers import TrainSettings

    overrides = dict(section)
    if args.lr is not None:
        overrides["lr"] = _number("--lr", args.lr, float, 0, strict=True)
    if args.batch_size is not None:
        overrides["batch_size"] = _number("--batch-size", args.batch_size, int, 1)
    if args.augment is not None:
        overrides["augment"] = _number("--augment", args.augment, float, 0)
    if args.optimizer is not None:
        overrides["optimizer"] = args.optimizer
    try:
        return TrainSettings.from_dict(overrides)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _device(text: str) -> Any:
    import torch

    if text == "auto":
        return None
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UsageError(f"--device {text!r}: expected auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {text!r}: no CUDA device here, expected auto or cpu")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {text!r}: expected auto, cpu or cuda[:N]")
    return device


def run(args: argparse.Namespace) -> int:
    """Train the spec, print progress on stderr and the result on stdout."""
    epochs = _number("--epochs", args.epochs, int, 1)
    seed = _number("--seed", args.seed, int, 0)
    val_fraction = _number("--val-fraction", args.val_fraction, float, 0)
    if val_fraction >= 1:
        raise UsageError(f"--val-fraction {args.val_fraction!r}: expected a number in [0, 1)")
    spec_dict, section = read_spec_file(Path(args.spec))
    settings = _settings(args, section)
    device = _device(args.device)

    import search_spaces
    import workers

    try:
        spec = search_spaces.load_spec(spec_dict)
    except ValueError as exc:
        raise UsageError(f"SPEC {args.spec!r}: {exc}") from None
    try:
        dataset = workers.get_dataset(
            args.dataset,
            args.data_dir,
            val_fraction=val_fraction,
            seed=seed,
            device=device if device is not None else workers.engine.loop.default_device(),
        )
    except workers.DataError as exc:
        raise UsageError(f"--dataset {args.dataset!r}: {exc}") from None

    def progress(m: Any, _state: dict) -> bool:
        print(
            f"epoch {m.epoch}/{epochs}  train_loss {m.train_loss:.4f}  val_loss {m.val_loss:.4f}  "
            f"val_acc {m.val_acc:.4f}  {m.images_per_s:,.0f} img/s  {m.seconds:.1f}s",
            file=sys.stderr,
            flush=True,
        )
        return False

    result = workers.train(
        spec,
        dataset,
        settings,
        epochs=epochs,
        device=device,
        seed=seed,
        on_epoch=progress,
        use_test=True,
    )
    report = result.to_dict()
    report.update(
        spec_id=search_spaces.spec_id(spec), dataset=args.dataset, settings=settings.to_dict()
    )
    if args.json:
        print(json.dumps(report, indent=2, default=float))
    elif result.ok:
        print(
            f"val_acc {result.val_acc:.4f}  test_acc {result.test_acc:.4f}  ({result.epochs} epochs, "
            f"{result.seconds:.1f}s, {result.train_images_per_s:,.0f} train img/s, {result.params:,} params)"
        )
    if not result.ok:
        print(f"nas train: trial {result.status}: {result.reason}", file=sys.stderr)
        return 1
    return 0
