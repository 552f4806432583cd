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


def _architecture(spec: dict[str, Any]) -> list[str]:
    """One line per stem layer and stage: what a reader needs to picture the network."""
    inp = spec.get("input", {})
    lines = [f"- input: {inp.get('dims')}D, {inp.get('channels')} channels, size {inp.get('size')}"]
    for layer in spec.get("stem", []) or []:
        lines.append(f"- stem: {json.dumps(layer, sort_keys=True)}")
    for i, stage in enumerate(spec.get("stages", []) or []):
        block = stage.get("block", {})
        rest = {k: v for k, v in block.items() if k != "type"}
        lines.append(
            f"- stage {i}: {block.get('type')} x{stage.get('repeats', 1)}, out {stage.get('out')}, "
            f"stride {stage.get('stride', 1)}"
            + (f", {json.dumps(rest, sort_keys=True)}" if rest else "")
        )
    if "head" in spec:
        lines.append(f"- head: {json.dumps(spec['head'], sort_keys=True)}")
    if "scaling" in spec:
        lines.append(f"- scaling: {json.dumps(spec['scaling'], sort_keys=True)}")
    if "defaults" in spec:
        lines.append(f"- defaults: {json.dumps(spec['defaults'], sort_keys=True)}")
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
        f"Spec id `{spec_id}`; study `{checkpoint.get('study')}`, trial {checkpoint.get('trial')}, "
        f"retrain run `{checkpoint.get('run_id')}`.",
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
        out += ["", f"ONNX written by torch's {onnx_exporter} exporter."]
    return "\n".join(out) + "\n"
