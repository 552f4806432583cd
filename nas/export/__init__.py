"""Export a retrained model: ONNX / TorchScript / state_dict files, verified against PyTorch,
with a model card; ``nas predict`` loads them back."""

from nas.export.loaders import ExportedModel, ExportFileError, load_export
from nas.export.model import (
    DeployableModel,
    input_shape,
    load_model_from_checkpoint,
    read_checkpoint,
)
from nas.export.pipeline import FORMATS, ExportResult, export_checkpoint, parse_formats
from nas.export.verify import ExportError, VerificationError, verify_export

__all__ = [
    "FORMATS",
    "DeployableModel",
    "ExportError",
    "ExportFileError",
    "ExportResult",
    "ExportedModel",
    "VerificationError",
    "export_checkpoint",
    "input_shape",
    "load_export",
    "load_model_from_checkpoint",
    "parse_formats",
    "read_checkpoint",
    "verify_export",
]
