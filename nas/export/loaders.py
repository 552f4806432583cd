"""Load an export (ONNX, TorchScript or state_dict .pt) as one callable: raw array -> logits.

Both ``nas predict`` and export verification go through these loaders, so what is verified
is exactly what users run. A corrupted or foreign file raises :class:`ExportFileError`
(a :class:`~nas.core.errors.UsageError`: one line, exit 2) and is never executed as a pickle.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.core.errors import UsageError
from nas.export import meta as _meta
from workers.checkpoint import CHECKPOINT_FORMAT

CHUNK = 256  # samples per run of a dynamic-batch model


class ExportFileError(UsageError):
    """The file is not a readable nas export (corrupt, truncated, foreign)."""


class ExportedModel:
    """A loaded export. ``model(x)`` maps float32 N,C,*spatial to N,num_classes logits."""

    format: str = ""

    def __init__(self, path: Path, metadata: dict[str, Any]) -> None:
        self.path = path
        self.metadata = metadata

    @property
    def input_shape(self) -> tuple[int, ...]:
        """C, *spatial the model takes."""
        return tuple(int(s) for s in self.metadata["input_shape"][1:])

    @property
    def batch(self) -> int | None:
        """The fixed batch size of the graph, or None for a dynamic batch axis."""
        b = self.metadata["input_shape"][0]
        return None if b is None else int(b)

    @property
    def class_names(self) -> list[str] | None:
        return self.metadata.get("class_names")

    @property
    def input_range(self) -> tuple[float, float] | None:
        """[min, max] of the inputs the model was trained on (None for older exports)."""
        r = self.metadata.get("input_range")
        return (float(r[0]), float(r[1])) if r else None

    @property
    def num_classes(self) -> int:
        return int(self.metadata["num_classes"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if tuple(x.shape[1:]) != self.input_shape:
            raise UsageError(
                f"input shape {list(x.shape)}: the model takes N,{','.join(map(str, self.input_shape))}"
            )
        b = self.batch
        step = b or CHUNK
        outs = []  # in chunks: bounded memory; a fixed-batch graph gets its last one zero-padded
        for i in range(0, len(x), step):
            chunk = x[i : i + step]
            n = len(chunk)
            if b is not None and n < b:
                chunk = np.concatenate([chunk, np.zeros((b - n, *chunk.shape[1:]), np.float32)])
            outs.append(self._run(chunk)[:n])
        return np.concatenate(outs) if outs else np.zeros((0, self.num_classes), np.float32)

    def _run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class _Onnx(ExportedModel):
    format = "onnx"

    def __init__(self, path: Path) -> None:
        import onnx
        import onnxruntime as ort

        try:
            proto = onnx.load(str(path))
            onnx.checker.check_model(proto)
        except Exception as exc:
            raise ExportFileError(f"{path}: not a readable ONNX model ({_brief(exc)})") from exc
        props = {p.key: p.value for p in proto.metadata_props}
        if _meta.META_KEY not in props:
            raise ExportFileError(
                f"{path}: an ONNX model but not a nas export (no {_meta.META_KEY!r} metadata)"
            )
        try:
            metadata = _meta.parse(props[_meta.META_KEY], str(path))
            options = ort.SessionOptions()
            options.log_severity_level = 3
            self.session = ort.InferenceSession(
                proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ExportFileError(f"{path}: ONNX model cannot be run ({_brief(exc)})") from exc
        self.input_name = self.session.get_inputs()[0].name
        super().__init__(path, metadata)

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: x})[0])


class _TorchScript(ExportedModel):
    format = "torchscript"

    def __init__(self, path: Path) -> None:
        extra = {_meta.META_KEY: ""}
        try:
            self.module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra).eval()
        except Exception as exc:
            raise ExportFileError(
                f"{path}: not a readable TorchScript archive ({_brief(exc)})"
            ) from exc
        if not extra[_meta.META_KEY]:
            raise ExportFileError(
                f"{path}: a TorchScript archive but not a nas export (no {_meta.META_KEY!r})"
            )
        try:
            metadata = _meta.parse(extra[_meta.META_KEY], str(path))
        except ValueError as exc:
            raise ExportFileError(str(exc)) from exc
        super().__init__(path, metadata)

    def _run(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.module(torch.from_numpy(x)).numpy()


class _StateDict(ExportedModel):
    format = "state_dict"

    def __init__(self, path: Path) -> None:
        from nas.export.model import DeployableModel

        try:
            payload = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # foreign pickles fail the weights_only unpickler here
            raise ExportFileError(
                f"{path}: not a readable state_dict file ({_brief(exc)})"
            ) from exc
        if not isinstance(payload, dict) or payload.get("kind") != "state_dict":
            hint = ""
            if isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT:
                hint = (
                    " (a retrain checkpoint: make an export of it with `nas export --checkpoint`)"
                )
            raise ExportFileError(f"{path}: a torch file but not a nas state_dict export{hint}")
        try:
            metadata = _meta.parse(
                _meta.dumps({k: v for k, v in payload.items() if k not in ("state_dict", "kind")}),
                str(path),
            )
            state = payload["state_dict"]
            mean = state["mean"].flatten().tolist()
            std = state["std"].flatten().tolist()
            self.module = DeployableModel.from_spec(
                metadata["spec"], metadata["num_classes"], mean, std
            )
            self.module.load_state_dict(state, strict=True)
        except Exception as exc:
            raise ExportFileError(
                f"{path}: state_dict export does not rebuild ({_brief(exc)})"
            ) from exc
        self.module.eval()
        super().__init__(path, metadata)

    def _run(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.module(torch.from_numpy(x)).numpy()


def _is_torchscript_zip(path: Path) -> bool:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def load_export(path: str | Path) -> ExportedModel:
    """Open an export by its content: ``.onnx`` -> ONNX Runtime; a zip archive -> TorchScript
    (it has ``code/``) or a state_dict file (``torch.load(weights_only=True)``)."""
    path = Path(path)
    if not path.is_file():
        raise ExportFileError(f"export {str(path)!r}: no such file")
    if path.suffix.lower() == ".onnx":
        return _Onnx(path)
    try:
        is_zip = zipfile.is_zipfile(path)
        kind = _TorchScript if is_zip and _is_torchscript_zip(path) else _StateDict
    except (OSError, zipfile.BadZipFile) as exc:
        raise ExportFileError(f"{path}: not a readable archive ({_brief(exc)})") from exc
    if not is_zip:
        raise ExportFileError(
            f"{path}: not a nas export (expected an .onnx file, a TorchScript archive or a state_dict .pt)"
        )
    return kind(path)


def _brief(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
