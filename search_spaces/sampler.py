"""Define-by-run sampling: one Optuna-style trial + one :class:`Space` -> (spec, train settings).

``sample`` asks the trial for every choice of the space, in a fixed order and under stable,
readable names (``stage1.block``, ``stage1.kernel``, ``train.sgd.lr``; never a ``/``), and
returns plain JSON data: an architecture spec following ``search_spaces/SPEC.md`` and the
training-settings dict of ``docs/INTERFACES.md``. Conditional choices fall out of the order:
an expansion ratio is asked only when the stage drew an inverted residual, a growth rate
only for a dense block, a momentum only for SGD / RMSprop.

It never imports Optuna: ``trial`` is anything with ``suggest_categorical(name, choices)``,
``suggest_int(name, low, high, step=1, log=False)`` and ``suggest_float(name, low, high,
log=False)`` -- an ``optuna.Trial``, an ``optuna.trial.FixedTrial`` or :class:`RandomTrial`.

Choices of one name never change between trials of one study (Optuna refuses categorical
choices that change), so everything that depends on the input is decided from the input
alone, and only int ranges (which Optuna allows to move) depend on earlier draws.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from search_spaces.cost import count
from search_spaces.scaling import scaled_size
from search_spaces.space import (
    INERT,
    OPTIMIZER_ONLY,
    STRIDE_ONE,
    TRAIN_KEYS,
    Space,
    SpaceError,
    load_space,
)
from search_spaces.spec import load_spec

__all__ = ["sample", "RandomTrial", "SampleRejected", "train_settings"]


class RandomTrial:
    """A seeded trial that draws every choice uniformly (log-uniformly for log ranges).

    Used by ``nas space check`` and tests; ``params`` records what was drawn, by name, in the
    form ``optuna.trial.FixedTrial(params)`` replays.
    """

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.params: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.params.setdefault(name, self.rng.choice(list(choices)))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        if name not in self.params:
            if log:
                value = round(math.exp(self.rng.uniform(math.log(low), math.log(high))))
                value = min(max(value, low), high)
            else:
                value = self.rng.randrange(low, high + 1, step)
            self.params[name] = value
        return self.params[name]

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        if name not in self.params:
            if log:
                value = math.exp(self.rng.uniform(math.log(low), math.log(high)))
            else:
                value = self.rng.uniform(low, high)
            self.params[name] = min(max(value, low), high)
        return self.params[name]


def train_settings(trial: Any, space: Space) -> dict[str, Any]:
    """The training-settings dict (every key of docs/INTERFACES.md), drawn from ``space``.

    Names: ``train.optimizer``; ``train.<key>`` for a shared setting; ``train.<opt>.<key>``
    for a setting the space gives under one optimizer. Settings an optimizer does not read
    (momentum for Adam, Nesterov for RMSprop) are not asked and get an inert value.
    """
    optimizers = tuple(space.optimizers)
    if len(optimizers) == 1:
        optimizer = optimizers[0]
    else:
        optimizer = trial.suggest_categorical("train.optimizer", list(optimizers))
    own = space.optimizers[optimizer]
    out: dict[str, Any] = {"optimizer": optimizer}
    for key in TRAIN_KEYS[1:]:
        if key in OPTIMIZER_ONLY and optimizer not in OPTIMIZER_ONLY[key]:
            out[key] = INERT[key]
        elif key in own:
            out[key] = own[key].suggest(trial, f"train.{optimizer}.{key}")
        else:
            out[key] = space.train[key].suggest(trial, f"train.{key}")
    return out


#: Inputs smaller than this (shortest side, after resolution scaling) keep their full
#: resolution through the stem: a stride-2 stem on an 8x8 digit throws away most of it. From
#: 28 (MNIST-sized) the stem may halve the input (28 -> 14, where LeNet-style networks pool
#: first); it may also pool, a second halving, from :data:`STEM_POOL_FROM`.
STEM_DOWNSAMPLE_FROM = 28
STEM_POOL_FROM = 32
#: GoogLeNet 3a branch widths as fractions of the module output (64+128+32+32 = 256).
INCEPTION_RATIOS = {"b1": 0.25, "b2_red": 0.375, "b2": 0.5, "b3_red": 0.0625, "b3": 0.125,
                    "pool_proj": 0.125}  # fmt: skip
#: Inception v3 Mixed_5b branch widths as fractions of the module output (64+64+96+32 = 256).
INCEPTION_V3_RATIOS = {"b1": 0.25, "b2_red": 0.1875, "b2": 0.25, "b3_red": 0.25, "b3": 0.375,
                       "pool_proj": 0.125}  # fmt: skip
#: Inception v3 Mixed_6a branch widths as fractions of its new channels (384 + 96; the
#: pooled input is concatenated to them).
REDUCTION_RATIOS = {"b1": 0.8, "b2_red": 0.1333, "b2": 0.2}
#: Block types whose branch widths follow from the stage width by the ratios above.
BRANCH_RATIOS = {"inception": INCEPTION_RATIOS, "inception_v3": INCEPTION_V3_RATIOS,
                 "inception_reduction": REDUCTION_RATIOS}  # fmt: skip


class SampleRejected(ValueError):
    """A sampled spec is over the space's ``limits`` even at the smallest width; ``reason``
    says by how much and ``spec`` is the smallest spec tried."""

    def __init__(self, reason: str, spec: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.spec = spec


def halvings(n: int, floor_size: int) -> int:
    """How many times ``n`` can be halved (rounding down) and stay >= ``floor_size``.

    Rounding down is the worst case of every downsampling the sampler emits (a pool or
    transition floors, a padded strided conv rounds up), so the spatial size it tracks is a
    lower bound of the real one.
    """
    count = 0
    while n // 2 >= floor_size:
        n //= 2
        count += 1
    return count


def _scaled(size: Sequence[int], resolution: float) -> int:
    """Shortest side after resolution scaling, as the training engine resizes it."""
    return min(scaled_size(list(size), resolution))


def _normalise_input(
    space: Space, dims: int, channels: int, size: int | Sequence[int], num_classes: int
) -> tuple[int, ...]:
    if dims not in space.dims:
        accepted = ", ".join(str(d) for d in space.dims)
        raise SpaceError(f"space '{space.name}' is for {accepted}-D input, got dims={dims!r}")
    sizes = (size,) * dims if isinstance(size, int) else tuple(int(s) for s in size)
    if len(sizes) != dims or min(sizes) < 1:
        raise SpaceError(f"size {size!r}: expected {dims} positive int(s) for {dims}-D input")
    if not isinstance(channels, int) or channels < 1:
        raise SpaceError(f"channels {channels!r}: expected an int >= 1")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise SpaceError(f"num_classes {num_classes!r}: expected an int >= 2")
    return sizes


#: Fewest positions per channel the last stage may keep, per norm. Instance norm and group
#: norm with one channel per group (``norm_groups`` = C) normalise each channel over its
#: positions alone: one position fails, and two make the output a near-sign of their
#: difference, so ill-conditioned that float32 rounding in another runtime (an ONNX export)
#: moves the logits by 1e-4. Four positions (2x2, or 4 steps of a series) keep it stable.
MIN_POSITIONS = {"instance": 4, "group": 4}


def floor_size(norm: str, dims: int) -> int:
    """Smallest side the last stage may reach with ``norm`` on ``dims``-D input."""
    positions = MIN_POSITIONS.get(norm, 1)
    side = 1
    while side**dims < positions:
        side += 1
    return side


def _worst_floor(space: Space, dims: int) -> int:
    """Smallest side the last stage may reach in any trial of this space."""
    return max(floor_size(n, dims) for n in space.defaults["norm"].values)


def _smallest_resolution(space: Space) -> float:
    res = space.scaling["resolution"]
    return min(res.values) if res.values is not None else res.low


def _stem(trial: Any, space: Space, sizes: tuple[int, ...]) -> tuple[list[dict], int]:
    """Stem entries and the number of halvings they make.

    Whether the stem may downsample is decided from the input alone (worst-case resolution
    and norm), so the choices of ``stem.stride`` / ``stem.pool`` never change within a study.
    """
    worst = _scaled(sizes, _smallest_resolution(space))
    room = halvings(worst, _worst_floor(space, len(sizes))) - (_count_bounds(space)[0] - 1)
    large, larger = worst >= STEM_DOWNSAMPLE_FROM, worst >= STEM_POOL_FROM
    stem = space.stem
    entry = {"type": "conv", "out": stem["width"].suggest(trial, "stem.width"),
             "kernel": stem["kernel"].suggest(trial, "stem.kernel"), "stride": 1}  # fmt: skip
    down = 0
    strides = [s for s in stem["stride"].values or (1,) if s == 1 or (large and room >= 1)]
    if strides:
        entry["stride"] = _pick(trial, "stem.stride", strides)
        down += entry["stride"] == 2
    out = [entry]
    pools = [p for p in stem["pool"].values or ("none",) if p == "none" or (larger and room >= 2)]
    pool = _pick(trial, "stem.pool", pools) if pools else "none"
    if pool != "none":
        out.append({"type": "pool", "kind": pool, "kernel": 3, "padding": 1, "stride": 2})
        down += 1
    return out, down


def _pick(trial: Any, name: str, values: Sequence[Any]) -> Any:
    """A categorical draw that does not ask when there is one value."""
    return values[0] if len(values) == 1 else trial.suggest_categorical(name, list(values))


def _count_bounds(space: Space) -> tuple[int, int]:
    c = space.stages["count"]
    if c.values is not None:
        return min(c.values), max(c.values)
    return int(c.low), int(c.high)


def _block(
    trial: Any, space: Space, option: Any, prefix: str, in_chs: int | None
) -> tuple[dict, int | None, int]:
    """(block dict, stage out or None when derived, repeats) of one stage's block.

    ``in_chs`` is the stage's input width when the sampler knows it (None after a block
    whose width the catalog derives): a grouped conv is only drawn where it is known, as
    its groups must divide it."""

    def draw(key: str, choice: Any) -> Any:
        return choice.suggest(trial, f"{prefix}.{space.option_names[(option.label, key)]}")

    def stage_level(key: str) -> Any:
        if key in option.overrides:
            return draw(key, option.overrides[key])
        return space.stages[key].suggest(trial, f"{prefix}.{key}")

    block: dict[str, Any] = {"type": option.type}
    for key, choice in option.options.items():
        if option.type == "conv" and key == "groups" and in_chs is None:
            continue  # groups 1
        block[key] = draw(key, choice)
    repeats = stage_level("repeats")
    if option.type == "dense":
        return block, None, repeats
    width = stage_level("width")
    ratios = BRANCH_RATIOS.get(option.type)
    if ratios is not None:
        block.update({k: max(4, round(width * r)) for k, r in ratios.items()})
        return block, None, repeats
    if option.type == "fire":  # SqueezeNet fire2: squeeze 16, expand 64 + 64 (out / 8, out / 2)
        half = max(4, width // 2)
        block.update({"squeeze": max(2, width // 8), "e1": half, "e3": half})
        return block, None, repeats
    return block, width, repeats


def sample(
    trial: Any,
    space: Space | str,
    *,
    dims: int,
    channels: int,
    size: int | Sequence[int],
    num_classes: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Draw one (architecture spec, training settings) pair from ``space``.

    The spec follows SPEC.md with ``input`` = (dims, channels, size); it is returned in
    canonical form when the catalog's ``load_spec`` is available. Depth adapts to the input:
    every stage after the first halves the spatial size, and the number of stages is capped
    so the last one still has at least 1x1 after resolution scaling (four positions with
    instance or group norm, see ``MIN_POSITIONS``). The spec comes back in the catalog's
    canonical form (``load_spec``, which also checks every size). Nothing heavy is computed, except when
    the space sets ``limits``: then the cost model counts the spec and, while it is over a
    limit, the width multiplier shrinks by 0.8 (at most 8 times) before
    :class:`SampleRejected` is raised.

    Raises SpaceError for an input the space does not take.
    """
    if not isinstance(space, Space):
        space = load_space(space)
    sizes = _normalise_input(space, dims, channels, size, num_classes)

    # A norm that needs more pixels than the input has (instance norm on 1x1) is not offered.
    worst = _scaled(sizes, _smallest_resolution(space))
    norms = [n for n in space.defaults["norm"].values if floor_size(n, dims) <= worst]
    defaults = {
        key: _pick(trial, key, norms or ["batch"]) if key == "norm" else choice.suggest(trial, key)
        for key, choice in space.defaults.items()
    }
    scaling = {key: c.suggest(trial, f"scaling.{key}") for key, c in space.scaling.items()}
    floor = floor_size(defaults["norm"], dims)

    stem, stem_down = _stem(trial, space, sizes)
    count = _stage_count(trial, space, sizes, scaling["resolution"], stem_down, floor)
    stages = _stages(trial, space, dims, count, stem[0]["out"])
    h = space.head
    hidden = h["hidden"].suggest(trial, "head.hidden")
    conv = h["conv"].suggest(trial, "head.conv")
    head = {
        "conv": conv or None,
        "pool": h["pool"].suggest(trial, "head.pool"),
        "hidden": [hidden] if hidden else [],
        "dropout": h["dropout"].suggest(trial, "head.dropout"),
    }
    spec = {
        "version": 1,
        "input": {"dims": dims, "channels": channels, "size": list(sizes)},
        "defaults": defaults,
        "stem": stem,
        "stages": stages,
        "head": head,
        "scaling": {**scaling, "divisor": 8},
        "init": {key: c.suggest(trial, f"init.{key}") for key, c in space.init.items()},
    }
    train = train_settings(trial, space)
    spec = load_spec(spec)
    if any(v is not None for v in space.limits.values()):
        spec = _fit_limits(spec, space, num_classes)
    return spec, train


def _stage_count(
    trial: Any,
    space: Space,
    sizes: tuple[int, ...],
    resolution: float,
    stem_down: int,
    floor: int,
) -> int:
    """How many stages: the space's range, capped so the last stage keeps ``floor``."""
    n = _scaled(sizes, resolution)
    for _ in range(stem_down):
        n //= 2
    low, high = _count_bounds(space)
    high = max(1, min(high, halvings(n, floor) + 1))
    low = min(low, high)
    return low if low == high else int(trial.suggest_int("stages", low, high))


def _stages(
    trial: Any, space: Space, dims: int, count: int, in_chs: int | None
) -> list[dict[str, Any]]:
    """The stages: a block per stage, every stage after the first halving the size (a pool
    or a DenseNet transition in front of a block type that cannot stride)."""
    options = {b.label: b for b in space.blocks_for(dims)}
    stages: list[dict[str, Any]] = []
    for i in range(1, count + 1):
        prefix = f"stage{i}"
        option = options[_pick(trial, f"{prefix}.block", list(options))]
        block, out, repeats = _block(trial, space, option, prefix, in_chs)
        in_chs = out
        stride = 2 if i > 1 else 1
        if stride == 2 and option.type in STRIDE_ONE:
            if option.type == "dense":
                comp = space.stages["compression"].suggest(trial, f"{prefix}.compression")
                down = {"type": "transition", "compression": comp}
            else:
                kind = space.stages["pool"].suggest(trial, f"{prefix}.pool")
                down = {"type": "pool", "kind": kind, "kernel": 3, "padding": 1}
            stages.append({"block": down, "out": None, "repeats": 1, "stride": 2})
            stride = 1
        stages.append({"block": block, "out": out, "repeats": repeats, "stride": stride})
    return stages


def _fit_limits(spec: dict[str, Any], space: Space, num_classes: int) -> dict[str, Any]:
    """Shrink ``scaling.width`` until the spec is within the space's limits, or reject it."""
    for _ in range(9):
        cost = count(spec, num_classes)
        over = [
            f"{got:,} {what} > limits.max_{what} {limit:,}"
            for what, got, limit in (
                ("params", cost.params, space.limits["max_params"]),
                ("macs", cost.macs, space.limits["max_macs"]),
            )
            if limit is not None and got > limit
        ]
        if not over:
            return spec
        smaller = dict(spec, scaling=dict(spec["scaling"]))
        smaller["scaling"]["width"] = round(spec["scaling"]["width"] * 0.8, 4)
        last, spec = spec, load_spec(smaller)
    raise SampleRejected(f"space '{space.name}': " + "; ".join(over), last)
