"""``nas predict EXPORT INPUT``: classify inputs with an exported model (no side information:
normalisation and resizing are inside the export)."""

from __future__ import annotations

import argparse
import json

import numpy as np

from nas.errors import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "predict",
        help="classify inputs with an exported model",
        description=__doc__.replace("``", "")
        + "\nINPUT: .npy/.npz (N,C,*spatial or one sample), an image, .csv or .ts",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "export", metavar="EXPORT", help="model.onnx, a TorchScript .pt or a state_dict .pt"
    )
    p.add_argument("input", metavar="INPUT", help="the data to classify")
    p.add_argument(
        "--top", type=int, default=1, metavar="K", help="classes shown per sample (default 1)"
    )
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    p.set_defaults(func=run)
    return p


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict(export_path: str, input_path: str, top: int = 1) -> list[dict]:
    """Per sample: ``{"index": i, "top": [{"class", "name", "prob"}, ...]}``, best first."""
    from nas.export import load_export
    from nas.export.inputs import read_input

    model = load_export(export_path)
    if not 1 <= top <= model.num_classes:
        raise UsageError(f"--top {top}: expected 1..{model.num_classes} (the model's classes)")
    x = read_input(input_path, model.input_shape)
    probs = softmax(model(x).astype(np.float64))
    names = model.class_names
    out = []
    for i, p in enumerate(probs):
        order = np.argsort(-p, kind="stable")[:top]
        out.append(
            {
                "index": i,
                "top": [
                    {"class": int(k), "name": names[k] if names else None, "prob": float(p[k])}
                    for k in order
                ],
            }
        )
    return out


def run(args: argparse.Namespace) -> int:
    results = predict(args.export, args.input, args.top)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        shown = ", ".join(
            f"{t['class']}"
            + (f" ({t['name']})" if t["name"] is not None else "")
            + f" p={t['prob']:.4f}"
            for t in r["top"]
        )
        print(f"{r['index']}: {shown}")
    return 0
