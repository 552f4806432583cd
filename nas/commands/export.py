"""``nas export``: a retrained model to ONNX / TorchScript / state_dict, verified and registered.

The checkpoint comes from ``--checkpoint PATH``, the retrain run ``--run ID`` (its
``nas.checkpoint`` tag) or ``--best`` (the study's retrain run with the highest test_acc).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nas.core.credentials import mask_url

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


def run(args: argparse.Namespace) -> int:
    from nas.export import ExportError
    from nas.export.search_export import export_from_search

    try:
        result, tracking_uri = export_from_search(
            Path(args.workdir),
            args.name,
            formats=args.format,
            run_id=args.run,
            checkpoint=args.checkpoint,
            out=args.out,
            opset=args.opset,
            dynamic_batch=args.dynamic_batch,
            register=not args.no_register,
            register_name=args.register_name,
            tracking_uri=args.tracking_uri,
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
            f"registered   {result.registered['name']} version {result.registered['version']} ({mask_url(tracking_uri)})"
        )
    return 0
