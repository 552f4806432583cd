"""``nas export``: a retrained model to ONNX / TorchScript / state_dict, verified and registered.

The checkpoint comes from ``--checkpoint PATH``, the retrain run ``--run ID`` (its
``nas.checkpoint`` tag) or ``--best`` (the study's retrain run with the highest test_acc).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nas.config import default_tracking_uri, search_stores
from nas.errors import UsageError

EXIT_VERIFY = 1


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="export a retrained model to ONNX / TorchScript, verified and registered",
        description=__doc__.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--workdir", default="nas-work", help="state folder (default ./nas-work)")
    p.add_argument("--name", default="search", help="study name (default: search)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--run", metavar="ID", help="MLflow retrain run id")
    src.add_argument("--best", action="store_true", help="the study's best retrain run (default)")
    src.add_argument("--checkpoint", metavar="PATH", help="a retrain checkpoint file")
    p.add_argument(
        "--format",
        default="onnx,torchscript",
        help="comma list of onnx, torchscript, state_dict (default onnx,torchscript)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="output folder (default <workdir>/<name>/exports/<run>/)"
    )
    p.add_argument(
        "--opset",
        type=int,
        default=17,
        help="ONNX opset (default 17; >= 18 uses the dynamo exporter)",
    )
    p.add_argument("--dynamic-batch", action="store_true", help="export a dynamic batch axis")
    p.add_argument(
        "--register-name", metavar="NAME", help="registered model name (default nas-<name>)"
    )
    p.add_argument("--no-register", action="store_true", help="do not register in MLflow")
    p.add_argument("--tracking-uri", help="MLflow store (default sqlite:///<workdir>/mlflow.db)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
    return p


def _locate(args: argparse.Namespace, tracking_uri: str) -> tuple[Path, str | None]:
    """(checkpoint path, retrain run id or None) from --checkpoint / --run / --best."""
    from nas import registry

    if args.checkpoint:
        return Path(args.checkpoint), None
    run_id = args.run or registry.best_retrain_run(args.name, tracking_uri)
    return registry.checkpoint_of_run(run_id, tracking_uri), run_id


def _export_id(checkpoint: Path, run_id: str | None) -> str:
    """Folder name of a default output: the retrain run id, else the trial number."""
    if run_id:
        return run_id
    from nas.export.model import read_checkpoint

    ckpt = read_checkpoint(checkpoint)
    if ckpt.get("run_id"):
        return str(ckpt["run_id"])
    return f"trial-{ckpt['trial']}" if ckpt.get("trial") is not None else checkpoint.stem


def run(args: argparse.Namespace) -> int:
    from nas.export import ExportError, export_checkpoint, parse_formats

    formats = parse_formats(args.format)  # bad --format fails before anything is loaded
    workdir = Path(args.workdir)
    searched_uri = search_stores(workdir, args.name)[1]  # the search's MLflow server, if any
    tracking_uri = args.tracking_uri or searched_uri or default_tracking_uri(workdir)
    if (
        not (args.checkpoint or args.tracking_uri or searched_uri)
        and not (workdir / "mlflow.db").is_file()
    ):
        raise UsageError(
            f"--workdir {str(workdir)!r}: no mlflow.db there; pass --checkpoint PATH or --tracking-uri"
        )
    checkpoint, run_id = _locate(args, tracking_uri)
    out = (
        Path(args.out)
        if args.out
        else workdir / args.name / "exports" / _export_id(checkpoint, run_id)
    )
    register = None if args.no_register else (args.register_name or f"nas-{args.name}")
    try:
        result = export_checkpoint(
            checkpoint,
            formats,
            out,
            opset=args.opset,
            dynamic_batch=args.dynamic_batch,
            register_name=register,
            tracking_uri=tracking_uri,
            run_id=run_id,
        )
    except ExportError as exc:  # a writer failed or verification did
        print(f"nas: error: {exc}; nothing registered", file=sys.stderr)
        return EXIT_VERIFY
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    for fmt, path in result.files.items():
        extra = f", {result.onnx_exporter} exporter" if fmt == "onnx" else ""
        print(
            f"{fmt:12s} {path}  ({result.sizes[fmt]:,} bytes, max abs diff {result.max_abs_diff[fmt]:.3g}{extra})"
        )
    print(f"model card   {result.model_card}")
    print(f"verified at batch sizes {result.batch_sizes} in {result.seconds:.1f}s")
    if result.registered:
        print(
            f"registered   {result.registered['name']} version {result.registered['version']} ({tracking_uri})"
        )
    return 0
