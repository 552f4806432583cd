"""The metadata every export carries, so ``nas predict`` needs no side information.

ONNX keeps it as a ``metadata_props`` entry, TorchScript as an extra file in its archive,
the state_dict file as a field of its payload; the content is the same JSON object.
"""

from __future__ import annotations

import json
from typing import Any

EXPORT_FORMAT = "nas-export"
EXPORT_VERSION = 1
META_KEY = "nas.export"  # ONNX metadata_props key / TorchScript extra-file name


def export_metadata(checkpoint: dict[str, Any], batch: int | None) -> dict[str, Any]:
    """The metadata of one export of ``checkpoint``; ``batch`` None = dynamic batch axis."""
    from nas.export.model import input_shape

    spec = checkpoint["spec"]
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "spec_id": spec_id_of(spec),
        "num_classes": int(checkpoint["num_classes"]),
        "class_names": checkpoint.get("class_names"),
        "input_shape": [batch, *input_shape(spec)],
        # the dataset's name only: a local data_dir means nothing where the export is deployed
        "dataset": (checkpoint.get("dataset") or {}).get("name"),
        "input_range": checkpoint.get("input_range"),  # [min, max] seen in training
        "spec": spec,
    }


def spec_id_of(spec: dict[str, Any]) -> str:
    """``search_spaces.spec_id`` (the catalog's hash of the canonical JSON)."""
    import search_spaces

    return search_spaces.spec_id(spec)


def dumps(meta: dict[str, Any]) -> str:
    return json.dumps(meta, sort_keys=True)


def parse(text: str | bytes, where: str) -> dict[str, Any]:
    """Parse and check metadata; ValueError naming ``where`` when it is not ours."""
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{where}: export metadata is not JSON") from exc
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{where}: not a nas export (metadata format != {EXPORT_FORMAT!r})")
    if meta.get("version") != EXPORT_VERSION:
        raise ValueError(
            f"{where}: export version {meta.get('version')!r}, expected {EXPORT_VERSION}"
        )
    shape = meta.get("input_shape")
    if (
        not isinstance(shape, list)
        or len(shape) < 3
        or not isinstance(meta.get("num_classes"), int)
    ):
        raise ValueError(f"{where}: export metadata lacks input_shape / num_classes")
    return meta
