"""The structure read from the imports (docs/ARCHITECTURE.md): packages import one way
(nas -> workers -> search_spaces), the rooms of nas/ import only rooms below them, no module
is in an import circle, and no folder holds more than 15 modules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("search_spaces", "workers", "nas")  # each may import only those before it
#: The rooms of nas/, lowest first: a room imports only rooms before it ("top" is nas/*.py).
ROOMS = ("core", "study", "cluster", "tracking", "driver", "export", "retrain", "commands", "top")
MAX_MODULES = 15


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] in PACKAGES}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ROOMS) else "top"


def test_packages_import_one_way() -> None:
    wrong = []
    for name, path in _modules().items():
        own = PACKAGES.index(name.split(".")[0])
        for target in _imports(path):
            if PACKAGES.index(target.split(".")[0]) > own:
                wrong.append(f"{name} -> {target}")
    assert not wrong, wrong


def test_rooms_of_nas_import_only_rooms_below() -> None:
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        if not name.startswith("nas."):
            continue
        own = ROOMS.index(_room(name))
        for target in _imports(path):
            resolved = _resolve(target, modules)
            if resolved and resolved.startswith("nas.") and ROOMS.index(_room(resolved)) > own:
                wrong.append(f"{name} -> {resolved}")
    assert not wrong, wrong


def test_no_import_circle() -> None:
    modules = _modules()
    graph = {
        name: {r for t in _imports(path, top_level_only=True) if (r := _resolve(t, modules))}
        - {name}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue  # a package and its own modules
            if state.get(nxt) == 1:
                return [*stack, node, nxt]
            if nxt not in state and (circle := visit(nxt, [*stack, node])):
                return circle
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            circle = visit(name, [])
            assert circle is None, " -> ".join(circle)


def test_no_folder_over_fifteen_modules() -> None:
    crowded = {}
    for package in PACKAGES:
        for folder in [ROOT / package, *(p for p in (ROOT / package).rglob("*") if p.is_dir())]:
            n = len([p for p in folder.glob("*.py") if p.name != "__init__.py"])
            if n > MAX_MODULES:
                crowded[str(folder.relative_to(ROOT))] = n
    assert not crowded, crowded
