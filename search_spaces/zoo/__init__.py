"""The zoo: classic networks written as specs, one ``<name>.yaml`` per network."""

from __future__ import annotations

from pathlib import Path

from search_spaces.spec import SpecError, load_spec

__all__ = ["ZOO_DIR", "list_zoo", "load_zoo"]

ZOO_DIR = Path(__file__).resolve().parent


def list_zoo() -> list[str]:
    """Names of the shipped zoo specs (file stems), sorted."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.yaml"))


def load_zoo(name: str) -> dict:
    """The canonical spec of zoo network ``name`` (e.g. ``"resnet18"``)."""
    path = ZOO_DIR / f"{name}.yaml"
    if not isinstance(name, str) or "/" in name or not path.is_file():
        raise SpecError(f"zoo: unknown network {name!r}; known: {', '.join(list_zoo())}")
    return load_spec(path)
