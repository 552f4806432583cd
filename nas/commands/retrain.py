"""``nas retrain``: train the best (or a chosen) architecture of a search properly."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nas.core.config import DEFAULT_NAME, DEFAULT_WORKDIR


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retrain",
        help="retrain the best (or a chosen) architecture of a search",
        description=__doc__,
    )
    p.add_argument("--workdir", default=DEFAULT_WORKDIR, help="the search's working folder")
    p.add_argument("--name", default=DEFAULT_NAME, help="the search's name (its Optuna study)")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--trial", type=int, help="the Optuna trial number (any point of a Pareto front)"
    )
    which.add_argument(
        "--best", action="store_true", help="the accuracy-best completed trial (default)"
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument(
        "--epochs",
        type=int,
        help="epochs (default: twice the search's full fidelity, at least 20 and 500 steps)",
    )
    length.add_argument(
        "--budget",
        metavar="DURATION",
        help="train for about this wall-clock time (90s, 10m, 1h): the epochs are planned "
        "from the network's measured training speed and the schedule fitted to them",
    )
    p.add_argument("--seed", type=int, help="training seed (default: the search's)")
    p.add_argument("--storage", help="Optuna storage URL, if the search used --storage")
    p.add_argument("--tracking-uri", help="MLflow tracking URI, if the search used --tracking-uri")
    p.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start from the weights of a retrain checkpoint (model.pt) or a state_dict export "
        "where they match this network (the stem or first stage at least); a new head for "
        "other classes",
    )
    p.add_argument(
        "--freeze",
        metavar="PARTS",
        help="with --init-from: keep these loaded weights fixed, e.g. stem or stem,stages:2",
    )
    p.add_argument(
        "--dataset",
        help="with --init-from: fine-tune the checkpoint's own architecture on this dataset "
        "(a name or a path; no search needed, --name names the results)",
    )
    p.add_argument("--data-dir", help="folder of --dataset's files")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.core.errors import UsageError
    from nas.retrain.run import retrain

    workdir = Path(args.workdir)
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs {args.epochs}: expected an integer >= 1")

    def progress(line: str) -> None:
        print(f"nas: {line}", file=sys.stderr)

    result = retrain(
        workdir,
        args.name,
        trial=args.trial,
        epochs=args.epochs,
        budget=args.budget,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        seed=args.seed,
        progress=progress,
        init_from=args.init_from,
        freeze=args.freeze,
        dataset=args.dataset,
        data_dir=args.data_dir,
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(
            f"trial {result.trial}: test accuracy {result.test_acc:.4f} after {result.epochs} epochs "
            f"({result.seconds:.0f}s)\ncheckpoint: {result.checkpoint}\nMLflow run: {result.run_id}\n"
            f"next: nas export --workdir {args.workdir} --name {args.name} --run {result.run_id} "
            "--format onnx,torchscript"
        )
    return 0
