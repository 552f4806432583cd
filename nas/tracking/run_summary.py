"""What a trial's MLflow run shows at a glance, as pure functions of its config and results:
a handful of params that summarise the architecture and its recipe (the full spec is the
run's ``spec.json``), the one-line description the runs table shows, and the MLflow dataset
entity of the search's data."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from nas.study.records import format_count
from nas.study.status_table import TrialStatus
from workers.trial import SAMPLES, VAL_ACC, TrialConfig

#: The training settings shown as params (the rest are in ``spec.json`` / the config).
TRAIN_PARAMS = ("optimizer", "lr", "batch_size", "weight_decay", "schedule", "augment")


def _joined(values: list[Any]) -> str:
    return ",".join(str(v) for v in values) if values else "-"


def arch_params(spec: dict[str, Any]) -> dict[str, str]:
    """``arch.*``: block types per stage, total depth, widths, activations, norms, kernel sizes,
    squeeze-excitation, input and compound scaling. Eight to nine values in all."""
    stages = spec.get("stages") or []
    defaults = spec.get("defaults") or {}
    blocks = [s.get("block") or {} for s in stages]
    kernels = sorted({int(b["kernel"]) for b in blocks if isinstance(b.get("kernel"), int)})
    se = max((float(b.get("se") or 0.0) for b in blocks), default=0.0)
    inp = spec.get("input") or {}
    size = inp.get("size") or []
    out = {
        "arch.blocks": _joined([b.get("type", "?") for b in blocks]),
        "arch.depth": str(sum(int(s.get("repeats", 1)) for s in stages)),
        "arch.widths": _joined([s.get("out", "?") for s in stages]),
        "arch.act": _joined(sorted({str(b.get("act", defaults.get("act", "-"))) for b in blocks})),
        "arch.norm": _joined(
            sorted({str(b.get("norm", defaults.get("norm", "-"))) for b in blocks})
        ),
        "arch.kernels": _joined(kernels),
        "arch.se": f"{se:g}",
        "arch.input": "x".join(str(v) for v in [inp.get("channels", "?"), *size]),
    }
    scaling = spec.get("scaling") or {}
    factors = [float(scaling.get(k, 1.0)) for k in ("width", "depth", "resolution")]
    if any(f != 1.0 for f in factors):
        out["arch.scaling"] = "w{:g} d{:g} r{:g}".format(*factors)
    return out


def trial_params(config: TrialConfig) -> dict[str, str]:
    """The few params of a trial run: the architecture summary, the recipe, the spec id."""
    train = config.train
    values = arch_params(config.spec)
    values.update({f"train.{k}": _text(train[k]) for k in TRAIN_PARAMS if k in train})
    values["spec_id"] = config.spec_id
    return values


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def description(status: TrialStatus, result: dict[str, Any], reason: str | None) -> str:
    """The run's description (MLflow's ``mlflow.note.content``, the runs table's Description
    column): the status, how far it trained and its accuracy there, and why it ended unless
    the scheduler pruned it (which the status says)."""
    text = status.value
    if result.get(SAMPLES):
        text += f" after {format_count(int(result[SAMPLES]))} samples"
    acc = result.get(VAL_ACC)
    if isinstance(acc, int | float) and acc == acc:
        text += f", val_acc {acc:.4f}"
    return f"{text}: {reason}" if reason and status != TrialStatus.PRUNED else text


def dataset_entity(data: Any, val_fraction: float, seed: int) -> Any:
    """The search's data as an MLflow dataset (name, digest, source, schema, profile), so
    every run's Datasets column names it. ``data`` is :class:`nas.core.config.DataInfo`."""
    from mlflow.entities import Dataset

    split = {"val_fraction": val_fraction, "seed": seed}
    source = {"uri": data.data_dir or f"builtin:{data.name}"}
    profile = {
        "train_samples": data.train_size,
        "val_samples": data.val_size,
        "num_classes": data.num_classes,
        **split,
    }
    shape = [data.channels, *data.size]
    schema = {"input": {"type": "float32", "shape": [-1, *shape]}, "target": "class index"}
    digest = hashlib.sha256(
        json.dumps([data.name, source, profile, shape], sort_keys=True).encode()
    ).hexdigest()[:12]
    return Dataset(
        name=data.name,
        digest=digest,
        source_type="local",
        source=json.dumps(source),
        schema=json.dumps(schema),
        profile=json.dumps(profile),
    )
