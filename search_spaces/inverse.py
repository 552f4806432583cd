"""The inverse of the sampler: an architecture spec + training settings -> the trial
parameters under which :func:`search_spaces.sample` draws exactly that pair from a space.

It replays :func:`~search_spaces.sampler.sample` with a trial that answers every question
from the target (``stage2.kernel`` -> the kernel of the second stage's block), so the
inverse follows the sampler's order and conditions without restating them; then it checks
the round trip: sampling with the parameters found must give the same spec id and the same
settings. A spec the space cannot express (a block type it does not offer, a width outside
its choices, an un-strided later stage) raises :class:`NotExpressible` naming why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from search_spaces.sampler import BRANCH_RATIOS, sample
from search_spaces.space import DEFAULTS_TABLE, Space, load_space
from search_spaces.spec import canonical, load_spec


class NotExpressible(ValueError):
    """The space cannot draw this spec / settings pair; the message says which choice."""


def _stages(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The sampler's logical stages: a pool / transition entry in front of a block that
    cannot stride belongs to that block's stage (as ``down``)."""
    out, down = [], None
    for entry in spec["stages"]:
        kind = entry["block"]["type"]
        if kind in ("pool", "transition") and entry.get("out") is None:
            down = entry["block"]
            continue
        out.append({**entry, "down": down})
        down = None
    return out


class _Answers:
    """A trial whose every answer comes from the target spec and settings."""

    def __init__(
        self,
        spec: dict[str, Any],
        train: dict[str, Any],
        space: Space,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.spec, self.train, self.space = spec, train, space
        self.stages = _stages(spec)
        self.overrides = overrides or {}
        self.params: dict[str, Any] = {}

    # -- what the target says -------------------------------------------------------------

    def target(self, name: str) -> Any:
        if name in self.overrides:
            return self.overrides[name]
        spec = self.spec
        head, first, parts = spec["head"], name.split(".")[0], name.split(".")
        if name in DEFAULTS_TABLE:
            return spec.get("defaults", {}).get(name, DEFAULTS_TABLE[name][1])
        if first == "scaling":
            return spec.get("scaling", {}).get(parts[1], 1.0)
        if first == "stem":
            return self._stem(parts[1])
        if name == "stages":
            return len(self.stages)
        if first == "head":
            if parts[1] == "hidden":
                return head["hidden"][0] if head.get("hidden") else 0
            if parts[1] == "conv":
                return head.get("conv") or 0
            return head[parts[1]]
        if first == "init":
            return spec["init"][parts[1]]
        if first == "train":
            return self.train[parts[-1]]
        if first.startswith("stage"):
            return self._stage(int(first[len("stage") :]) - 1, parts[1:])
        raise NotExpressible(f"{name}: a parameter this inverse does not know")

    def _stem(self, key: str) -> Any:
        conv = self.spec["stem"][0]
        if key == "width":
            return conv["out"]
        if key == "pool":
            rest = self.spec["stem"][1:]
            return rest[0]["kind"] if rest else "none"
        return conv.get(key, 1 if key == "stride" else None)

    def _stage(self, i: int, key: Sequence[str]) -> Any:
        if i >= len(self.stages):
            raise NotExpressible(f"stage{i + 1}: the spec has {len(self.stages)} stages")
        stage = self.stages[i]
        block = stage["block"]
        key = key[-1]  # stage2.kernel, or stage2.dense.repeats where block types differ
        if key == "block":
            labels = [b.label for b in self.space.blocks_for(self.spec["input"]["dims"])
                      if b.type == block["type"]]  # fmt: skip
            if not labels:
                raise NotExpressible(f"stage{i + 1}: block type {block['type']!r} not offered")
            return labels[0]
        if key in ("pool", "compression"):
            down = stage["down"] or {}
            return down.get("kind" if key == "pool" else "compression")
        if key == "repeats":
            return stage["repeats"]
        if key == "width":
            if stage.get("out") is not None:
                return stage["out"]
            if block["type"] in BRANCH_RATIOS:
                return int(round(block["b1"] / BRANCH_RATIOS[block["type"]]["b1"]))
            return block.get("e1", 0) * 2  # fire: expand 1x1 is half the stage width
        return block.get(key)

    # -- the trial interface --------------------------------------------------------------

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self.target(name)
        for choice in choices:
            if choice == value or (
                isinstance(choice, float) and isinstance(value, int | float)
                and math.isclose(choice, value, rel_tol=1e-9)
            ):  # fmt: skip
                self.params[name] = choice
                return choice
        raise NotExpressible(f"{name}: {value!r} is not among the space's {list(choices)}")

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        value = self.target(name)
        if not isinstance(value, int) or not low <= value <= high or (value - low) % step:
            raise NotExpressible(f"{name}: {value!r} is outside the space's {low}..{high}")
        self.params[name] = value
        return value

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        value = self.target(name)
        if not isinstance(value, int | float) or not low <= value <= high:
            raise NotExpressible(f"{name}: {value!r} is outside the space's {low}..{high}")
        self.params[name] = float(value)
        return float(value)


class _Replay:
    """``optuna.trial.FixedTrial`` without Optuna: answers from a parameter dict."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def _get(self, name: str) -> Any:
        if name not in self.params:
            raise NotExpressible(f"{name}: asked on the round trip but not found by the inverse")
        return self.params[name]

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._get(name)

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return self._get(name)

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        return self._get(name)


def params_for(
    spec: dict[str, Any], train: dict[str, Any], space: Space | str, *, num_classes: int
) -> dict[str, Any]:
    """The trial parameters that make ``sample`` draw ``spec`` and ``train`` from ``space``.

    ``spec``'s input (dims, channels, size) is the data's. Raises :class:`NotExpressible`
    when the space cannot draw them, with the first choice that fails."""
    if not isinstance(space, Space):
        space = load_space(space)
    spec = load_spec(spec)
    inp = spec["input"]
    kwargs = {"dims": inp["dims"], "channels": inp["channels"], "size": tuple(inp["size"]),
              "num_classes": num_classes}  # fmt: skip
    try:
        return _round_trip(spec, train, space, kwargs, None)
    except NotExpressible as exc:
        first = exc
    widths = space.scaling["width"].values
    if all(v is None for v in space.limits.values()) or widths is None:
        raise first
    # a space with limits shrinks the width multiplier of a spec over them (x0.8 per try):
    # the spec may come from a larger drawn width
    width = spec.get("scaling", {}).get("width", 1.0)
    for drawn in sorted(v for v in widths if v > width):
        try:
            return _round_trip(spec, train, space, kwargs, {"scaling.width": drawn})
        except NotExpressible:
            continue
    raise first


def _unnamed(spec: dict[str, Any]) -> dict[str, Any]:
    """The canonical spec without its name (a sampled spec has none)."""
    return {k: v for k, v in canonical(spec).items() if k != "name"}


def _first_difference(a: Any, b: Any, path: str = "spec") -> tuple[str, Any, Any]:
    """(path, a's value, b's value) of the first place two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return path, a, b


def _round_trip(
    spec: dict[str, Any],
    train: dict[str, Any],
    space: Space,
    kwargs: dict[str, Any],
    overrides: dict[str, Any] | None,
) -> dict[str, Any]:
    """Parameters answered from the target, checked by sampling with them again."""
    answers = _Answers(spec, train, space, overrides)
    sample(answers, space, **kwargs)
    drawn, drawn_train = sample(_Replay(answers.params), space, **kwargs)
    want, got = _unnamed(spec), _unnamed(drawn)
    if want != got:
        path, a, b = _first_difference(want, got)
        raise NotExpressible(f"{path}: {a!r} is drawn as {b!r} by space '{space.name}'")
    differs = [k for k in drawn_train if k in train and drawn_train[k] != train[k]]
    if differs:
        raise NotExpressible(
            f"train.{differs[0]}: {train[differs[0]]!r} is fixed to "
            f"{drawn_train[differs[0]]!r} in space '{space.name}'"
        )
    return answers.params
