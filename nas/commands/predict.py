"""``nas predict EXPORT INPUT``: classify inputs with an exported model (no side information:
normalisation and resizing are inside the export)."""

from __future__ import annotations

import argparse
import json

import numpy as np

from nas.core.errors import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "predict",
        help="classify inputs with an exported model",
        description=__doc__.replace("``", "")
        + "\nINPUT: .npy/.npz (N,C,*spatial or one sample), an image, .csv or .ts",
    )
    p.add_argument(
        "export", metavar="EXPORT", help="model.onnx, a TorchScript .pt or a state_dict .pt"
    )
    p.add_argument("input", metavar="INPUT", help="the data to classify")
    p.add_argument(
        "--top", type=int, default=1, metavar="K", help="classes shown per sample (default 1)"
    )
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    p.add_argument(
        "--any-range",
        action="store_true",
        help="classify even inputs whose values lie on another scale than the training data's",
    )
    p.set_defaults(func=run)
    return p


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


#: An input is on another scale than training when it reaches this share of the training
#: span outside it, or spans less than this share of it (0..16 against 0..255 spans 6%).
SCALE_TOLERANCE = 0.1


def check_range(x: np.ndarray, trained: tuple[float, float] | None, where: str) -> None:
    """Refuse inputs whose values are on another scale than the training data's."""
    if trained is None or not x.size:
        return
    lo, hi = trained
    span = hi - lo
    a, b = float(x.min()), float(x.max())
    outside = a < lo - SCALE_TOLERANCE * span or b > hi + SCALE_TOLERANCE * span
    if span > 0 and (outside or (b - a) < SCALE_TOLERANCE * span):
        raise UsageError(
            f"input {where!r}: values {a:g}..{b:g}, but the model was trained on {lo:g}..{hi:g}; "
            "rescale the input to that range (or pass --any-range)"
        )


def predict(
    export_path: str, input_path: str, top: int = 1, *, any_range: bool = False
) -> list[dict]:
    """Per sample: ``{"index": i, "top": [{"class", "name", "prob"}, ...]}``, best first.
    Inputs on another scale than the training data are refused unless ``any_range``."""
    from nas.export import load_export
    from nas.export.inputs import read_input

    model = load_export(export_path)
    if not 1 <= top <= model.num_classes:
        raise UsageError(f"--top {top}: expected 1..{model.num_classes} (the model's classes)")
    x = read_input(input_path, model.input_shape)
    if not any_range:
        check_range(x, model.input_range, input_path)
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
    results = predict(args.export, args.input, args.top, any_range=args.any_range)
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
