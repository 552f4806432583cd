"""The zoo: classic networks written as specs, one ``<name>.yaml`` per network.

A zoo file may derive its network from another entry: ``from: efficientnet_b0`` loads that
entry and replaces the top-level sections the file gives (``name``, ``scaling``, ``head``,
``defaults``), each merged key by key. EfficientNet-B1 to B7 are B0 with compound scaling
alone, written that way.

Auxiliary classifiers: a zoo spec carries them where the network has them (GoogLeNet,
Inception v3); ``load_zoo(name, aux_logits=...)`` keeps or drops them. The default follows
torchvision's published weights: Inception v3 keeps them, GoogLeNet does not.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from search_spaces.spec import SpecError, load_spec

__all__ = ["ZOO_DIR", "list_zoo", "load_zoo"]

ZOO_DIR = Path(__file__).resolve().parent
#: Networks whose torchvision weights ship without their auxiliary classifiers.
AUX_OFF_BY_DEFAULT = ("googlenet",)
MERGED = ("name", "scaling", "head", "defaults")


def list_zoo() -> list[str]:
    """Names of the shipped zoo specs (file stems), sorted."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.yaml"))


def _raw(name: str) -> dict[str, Any]:
    path = ZOO_DIR / f"{name}.yaml"
    if not isinstance(name, str) or "/" in name or not path.is_file():
        raise SpecError(f"zoo: unknown network {name!r}; known: {', '.join(list_zoo())}")
    data = yaml.safe_load(path.read_text())
    base = data.pop("from", None)
    if base is None:
        return data
    unknown = sorted(set(data) - set(MERGED))
    if unknown:
        raise SpecError(f"zoo {name}: {unknown[0]!r} cannot be changed by a derived entry")
    spec = copy.deepcopy(_raw(base))
    for key, value in data.items():
        spec[key] = {**(spec.get(key) or {}), **value} if isinstance(value, dict) else value
    return spec


def load_zoo(name: str, *, aux_logits: bool | None = None) -> dict:
    """The canonical spec of zoo network ``name`` (e.g. ``"resnet18"``); ``aux_logits``
    keeps (True) or drops (False) its auxiliary classifiers (default: as torchvision's
    weights ship it)."""
    spec = _raw(name)
    if aux_logits is None:
        aux_logits = name not in AUX_OFF_BY_DEFAULT
    if not aux_logits:
        spec["stages"] = [{k: v for k, v in st.items() if k != "aux"} for st in spec["stages"]]
    return load_spec(spec)
