"""The model card: a Markdown page that travels with an export and its registry entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nas.export.verify import ATOL, RTOL


def _fmt_int(n: Any) -> str:
    return f"{int(n):,}" if isinstance(n, (int, float)) else "n/a"


def _fmt(x: Any, unit: str = "", digits: int = 4) -> str:
    if isinstance(x, (int, float)):
        return f"{x:.{digits}g}{unit}"
    return "n/a"


def _options(entry: dict[str, Any], defaults: dict[str, Any], skip: tuple[str, ...]) -> str:
    """The options of a block that say something: not null, not the spec-wide default, no
    SE when its ratio is 0."""
    kept = {
        k: v
        for k, v in entry.items()
        if k not in skip
        and v is not None
        and defaults.get(k, object()) != v
        and not (k == "se" and not v)
    }
    return ", ".join(f"{k} {json.dumps(v)}" for k, v in sorted(kept.items()))


def _architecture(spec: dict[str, Any]) -> list[str]:
    """One line per stem layer and stage: what a reader needs to picture the network."""
    inp = spec.get("input", {})
    defaults = spec.get("defaults", {}) or {}
    lines = [f"- input: {inp.get('dims')}D, {inp.get('channels')} channels, size {inp.get('size')}"]
    if defaults:
        lines.append(f"- defaults: {_options(defaults, {}, ())}")
    for layer in spec.get("stem", []) or []:
        opts = _options(layer, defaults, ("type", "out", "stride"))
        lines.append(
            f"- stem: {layer.get('type')}, out {layer.get('out')}, stride {layer.get('stride', 1)}"
            + (f"; {opts}" if opts else "")
        )
    for i, stage in enumerate(spec.get("stages", []) or []):
        block = stage.get("block", {})
        opts = _options(block, defaults, ("type",))
        lines.append(
            f"- stage {i}: {block.get('type')} x{stage.get('repeats', 1)}, out {stage.get('out')}, "
            f"stride {stage.get('stride', 1)}" + (f"; {opts}" if opts else "")
        )
    if "head" in spec:
        lines.append(f"- head: {_options(spec['head'], defaults, ())}")
    if "scaling" in spec:
        sc = spec["scaling"]
        lines.append(
            f"- scaling: width {sc.get('width')}, depth {sc.get('depth')}, "
            f"resolution {sc.get('resolution')} (the export resizes its input by it)"
        )
    return lines


def render_model_card(
    checkpoint: dict[str, Any],
    *,
    spec_id: str,
    files: dict[str, Path],
    max_abs_diff: dict[str, float],
    onnx_exporter: str | None,
    batch_sizes: list[int],
) -> str:
    """Markdown for the model exported from ``checkpoint`` (ours: nas-checkpoint v1)."""
    spec = checkpoint["spec"]
    cost = checkpoint.get("cost") or {}
    metrics = checkpoint.get("metrics") or {}
    data = checkpoint.get("dataset") or {}
    norm = checkpoint.get("normalize") or {}
    title = spec.get("name") or f"architecture {spec_id}"
    out = [
        f"# Model card: {title}",
        "",
        f"Spec id `{spec_id}`; study `{checkpoint.get('study')}`, trial {checkpoint.get('trial')}"
        + (f", retrain run `{checkpoint['run_id']}`." if checkpoint.get("run_id") else "."),
        "The full spec travels inside every export (metadata `nas.export`).",
        "",
        "## Architecture",
        "",
        *_architecture(spec),
        "",
        "## Cost",
        "",
        "| parameters | MACs | latency batch 1 | latency batch 64 |",
        "|---|---|---|---|",
        f"| {_fmt_int(cost.get('params'))} | {_fmt_int(cost.get('macs'))} | "
        f"{_fmt(cost.get('latency_ms_b1'), ' ms')} | {_fmt(cost.get('latency_ms_b64'), ' ms')} |",
        "",
        "Latency as measured after retraining (device of the retrain run).",
        "",
        "## Accuracy",
        "",
        *[f"- {k}: {_fmt(v)}" for k, v in sorted(metrics.items())],
        "",
        "## Data",
        "",
        f"- dataset: {data.get('name')} ({data.get('data_dir') or 'default location'})",
        f"- classes: {checkpoint.get('num_classes')}"
        + (
            f" ({', '.join(map(str, checkpoint['class_names']))})"
            if checkpoint.get("class_names")
            else ""
        ),
        f"- normalisation (inside the exported graph): mean {norm.get('mean')}, std {norm.get('std')}",
        f"- input: raw values in the dataset's units, shape N,{spec['input']['channels']},"
        + ",".join(map(str, spec["input"]["size"])),
        "",
        "## Training settings",
        "",
        "```json",
        json.dumps(checkpoint.get("train") or {}, indent=2, sort_keys=True),
        "```",
        "",
        "## Export",
        "",
        f"Verified against PyTorch at batch sizes {batch_sizes} (rtol {RTOL:g}, atol {ATOL:g}).",
        "",
        "| format | file | max abs diff |",
        "|---|---|---|",
        *[
            f"| {fmt} | {Path(p).name} | {max_abs_diff.get(fmt, float('nan')):.3g} |"
            for fmt, p in files.items()
        ],
    ]
    if onnx_exporter:
        how = (
            "dynamo (torch.export) exporter"
            if onnx_exporter == "dynamo"
            else "TorchScript-based exporter"
        )
        out += ["", f"ONNX written by torch.onnx's {how}."]
    return "\n".join(out) + "\n"
