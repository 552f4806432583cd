"""The ``nas arch summary`` table of a spec: one row per layer (output shape, parameters,
MACs), then the totals. Printed by the command and logged on every trial's MLflow run."""

from __future__ import annotations

from typing import Any


def _fmt(n: int) -> str:
    return f"{n:,d}"


def table(name: str, sid: str, report: Any) -> str:
    """The human-readable summary: one row per layer, then totals."""
    rows = [("layer", "type", "output", "params", "MACs")]
    for layer in report.layers:
        shape = "x".join(str(v) for v in layer["out_shape"])
        rows.append(
            (layer["name"], layer["type"], shape, _fmt(layer["params"]), _fmt(layer["macs"]))
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [f"{name or 'spec'} ({sid}), input {'x'.join(map(str, report.input_shape))}"]
    for i, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.rjust(w) if j >= 3 else cell.ljust(w)
                for j, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    aux = getattr(report, "aux_params", 0)
    extra = f" (+ {_fmt(aux)} in training-only auxiliary heads)" if aux else ""
    lines.append(f"params: {_fmt(report.params)}{extra}")
    scaled = f"{report.macs / 1e9:.3f} G" if report.macs >= 1e8 else f"{report.macs / 1e6:.3f} M"
    lines.append(f"MACs: {_fmt(report.macs)} ({scaled})")
    lines.append(f"activations: {report.activation_bytes / 2**20:.2f} MiB per sample (float32)")
    return "\n".join(lines)


def spec_summary(spec: dict[str, Any], num_classes: int) -> str:
    """The table of ``spec`` at its own input size with ``num_classes`` outputs."""
    import search_spaces

    report = search_spaces.count(spec, num_classes, None)
    return table(spec.get("name") or "", search_spaces.spec_id(spec), report)
