"""Search-space files: loading, validation and the parsed :class:`Space`.

A space is a YAML file of *choices* (``search_spaces/<name>.yaml``); the sampler
(:mod:`search_spaces.sampler`) turns one Optuna trial into one concrete architecture spec
plus training settings by asking the trial for each choice. Users read, copy and edit these
files, so every mistake is reported as a :class:`SpaceError` naming the file and the YAML
path of the mistake, e.g.
``image.yaml: stages.blocks[2].kernel: expected a list of odd ints >= 1, got 'three'``.

The file format is documented in the header comment of every shipped space (see
``image.yaml``); in short a choice is written as

* a list of values ``[3, 5, 7]`` (categorical; a one-element list is a fixed value),
* a single value ``3`` (fixed, the trial is not asked), or
* a range ``{low: 1.0e-4, high: 0.1, log: true}`` (int or float; ``step`` for ints).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from search_spaces.blocks import BLOCKS
from search_spaces.layers import ACTIVATIONS, NORMS, PADDING_MODES

SPACES_DIR = Path(__file__).resolve().parent

__all__ = [
    "Choice",
    "BlockOption",
    "Space",
    "SpaceError",
    "load_space",
    "parse_space",
    "list_spaces",
    "default_space_for",
    "TRAIN_KEYS",
    "TRAIN_DEFAULTS",
]


class SpaceError(ValueError):
    """A space file (or space name) is wrong; the message names the file and YAML path."""


# ----------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Check:
    """What a value must be: a type, a predicate, and how to say it (singular / plural)."""

    one: str  # "an odd int >= 1"
    many: str  # "odd ints >= 1"
    kind: str  # "int" | "float" | "str" | "bool"
    test: Callable[[Any], bool] = lambda v: True
    rangeable: bool = False  # may be written as {low, high, log}

    def coerce(self, value: Any) -> tuple[bool, Any]:
        """(ok, value converted to the check's type)."""
        if self.kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.kind == "float":
            if isinstance(value, str):  # PyYAML reads `1e-3` (no dot) as a string
                try:
                    value = float(value)
                except ValueError:
                    return False, value
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok:
                value = float(value)
                ok = math.isfinite(value)
        elif self.kind == "bool":
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            return False, value
        try:
            return bool(self.test(value)), value
        except (TypeError, ValueError):
            return False, value


def one_of(names: Iterable[str]) -> Check:
    """A string from a fixed set of names."""
    names = tuple(names)
    listed = ", ".join(names)
    return Check(f"one of {listed}", f"names from {listed}", "str", lambda v: v in names)


POS_INT = Check("an int >= 1", "ints >= 1", "int", lambda v: v >= 1, rangeable=True)
NONNEG_INT = Check("an int >= 0", "ints >= 0", "int", lambda v: v >= 0, rangeable=True)
ODD_INT = Check("an odd int >= 1", "odd ints >= 1", "int", lambda v: v >= 1 and v % 2 == 1)
POW2_INT = Check("a power of two", "powers of two", "int", lambda v: v >= 1 and v & (v - 1) == 0)
POS_FLOAT = Check("a float > 0", "floats > 0", "float", lambda v: v > 0, rangeable=True)
NONNEG_FLOAT = Check("a float >= 0", "floats >= 0", "float", lambda v: v >= 0, rangeable=True)
UNIT_FLOAT = Check(
    "a float in [0, 1)", "floats in [0, 1)", "float", lambda v: 0 <= v < 1, rangeable=True
)
UNIT_CLOSED = Check(
    "a float in [0, 1]", "floats in [0, 1]", "float", lambda v: 0 <= v <= 1, rangeable=True
)
BOOL = Check("true or false", "booleans", "bool")


# ----------------------------------------------------------------------------- choices


@dataclass(frozen=True)
class Choice:
    """One decision of a space: a categorical list of values or an int / float range.

    ``suggest`` asks an Optuna-style trial for it; a single value is returned without asking,
    so fixed settings do not clutter the study's parameters.
    """

    values: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: int = 1
    kind: str = "str"

    @property
    def fixed(self) -> bool:
        """True when there is nothing to choose."""
        if self.values is not None:
            return len(self.values) == 1
        return self.low == self.high

    def suggest(self, trial: Any, name: str) -> Any:
        """The value for this decision, asking ``trial`` under ``name`` unless it is fixed."""
        if self.values is not None:
            if len(self.values) == 1:
                return self.values[0]
            return trial.suggest_categorical(name, list(self.values))
        if self.low == self.high:
            return self.low
        if self.kind == "int":
            return int(
                trial.suggest_int(name, int(self.low), int(self.high), step=self.step, log=self.log)
            )
        return float(trial.suggest_float(name, self.low, self.high, log=self.log))


def fixed(value: Any, kind: str = "str") -> Choice:
    """A one-value choice (a built-in default)."""
    return Choice(values=(value,), kind=kind)


class _Reader:
    """Walks one YAML document, raising SpaceError with ``file: yaml.path: message``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> SpaceError:
        where = f"{path}: " if path else ""
        return SpaceError(f"{self.source}: {where}{message}")

    def mapping(
        self, node: Any, path: str, allowed: Iterable[str], required: Iterable[str] = ()
    ) -> dict[str, Any]:
        """A mapping with known keys only (unknown keys are typos worth reporting)."""
        if node is None:
            node = {}
        if not isinstance(node, Mapping):
            raise self.fail(path, f"expected a mapping, got {node!r}")
        allowed = tuple(allowed)
        for key in node:
            if key not in allowed:
                raise self.fail(
                    _join(path, str(key)),
                    f"unknown key; expected one of: {', '.join(allowed)}",
                )
        for key in required:
            if key not in node:
                raise self.fail(path, f"missing required key '{key}'")
        return dict(node)

    def value(self, node: Any, path: str, check: Check) -> Any:
        """One plain value that must pass ``check``."""
        ok, value = check.coerce(node)
        if not ok:
            raise self.fail(path, f"expected {check.one}, got {node!r}")
        return value

    def choice(self, node: Any, path: str, check: Check) -> Choice:
        """A list of values, a single value, or (when allowed) a {low, high, log} range."""
        expected = f"a list of {check.many}"
        if check.rangeable:
            expected += " or a range {low, high, log}"
        if isinstance(node, Mapping):
            if not check.rangeable or check.kind not in ("int", "float"):
                raise self.fail(path, f"expected {expected}, got {dict(node)!r}")
            rng = self.mapping(node, path, ("low", "high", "log", "step"), ("low", "high"))
            low = self.value(rng["low"], _join(path, "low"), check)
            high = self.value(rng["high"], _join(path, "high"), check)
            log = self.value(rng.get("log", False), _join(path, "log"), BOOL)
            step = 1
            if "step" in rng:
                if check.kind != "int":
                    raise self.fail(_join(path, "step"), "step is only for int ranges")
                step = self.value(rng["step"], _join(path, "step"), POS_INT)
                if log and step != 1:
                    raise self.fail(_join(path, "step"), "a log range takes no step")
            if low > high:
                raise self.fail(path, f"low {low!r} is greater than high {high!r}")
            if log and low <= 0:
                raise self.fail(_join(path, "low"), f"a log range needs low > 0, got {low!r}")
            if check.kind == "int" and (high - low) % step:
                raise self.fail(path, f"high - low ({high - low}) is not a multiple of step {step}")
            return Choice(low=low, high=high, log=log, step=step, kind=check.kind)
        if isinstance(node, list):
            if not node:
                raise self.fail(path, f"expected {expected}, got []")
            values = []
            for i, item in enumerate(node):
                ok, value = check.coerce(item)
                if not ok:
                    raise self.fail(f"{path}[{i}]", f"expected {check.one}, got {item!r}")
                if value in values:
                    raise self.fail(f"{path}[{i}]", f"duplicate value {item!r}")
                values.append(value)
            return Choice(values=tuple(values), kind=check.kind)
        ok, value = check.coerce(node)
        if not ok:
            raise self.fail(path, f"expected {expected}, got {node!r}")
        return Choice(values=(value,), kind=check.kind)

    def choices(
        self, node: Any, path: str, table: Mapping[str, tuple[Check, Any]]
    ) -> dict[str, Choice]:
        """A section of choices: every key of ``table``, with its default when absent."""
        given = self.mapping(node, path, table)
        out = {}
        for key, (check, default) in table.items():
            if key in given:
                out[key] = self.choice(given[key], _join(path, key), check)
            else:
                out[key] = fixed(default, check.kind)
        return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# ----------------------------------------------------------------------------- training

#: The keys of the training-settings dict (docs/INTERFACES.md), in order.
TRAIN_KEYS = (
    "optimizer",
    "lr",
    "momentum",
    "nesterov",
    "weight_decay",
    "batch_size",
    "schedule",
    "warmup_epochs",
    "label_smoothing",
    "augment",
    "grad_clip",
)
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("cosine", "onecycle", "step", "constant")
#: Which optimizers read which optional setting; others get the inert value below.
OPTIMIZER_ONLY = {"momentum": ("sgd", "rmsprop"), "nesterov": ("sgd",)}
INERT = {"momentum": 0.0, "nesterov": False}

#: The training defaults of the whole project: what a space that omits a setting draws, and
#: what ``workers.TrainSettings`` (``nas train``, retrain) uses when nothing is given. They
#: train a small CNN well (benchmarks/specs/fashion_mnist_reference.yaml).
TRAIN_DEFAULTS: dict[str, Any] = {
    "optimizer": "sgd",
    "lr": 0.05,  # peak learning rate (after warmup)
    "momentum": 0.9,  # sgd / rmsprop
    "nesterov": True,  # sgd only
    "weight_decay": 5e-4,  # decoupled for adamw, L2 otherwise
    "batch_size": 128,
    "schedule": "onecycle",
    "warmup_epochs": 0.0,  # linear warmup; onecycle warms up for >= 25% of the run anyway
    "label_smoothing": 0.0,  # Szegedy et al. 2016 (Inception v3)
    "augment": 0.5,  # strength in [0, 1]; 0 = none; the data's modality decides the ops
    "grad_clip": 0.0,  # max global grad norm; 0 = off
}
#: Every setting but ``optimizer``: its check (the default is ``TRAIN_DEFAULTS``'s).
TRAIN_CHECKS: dict[str, Check] = {
    "lr": POS_FLOAT,
    "momentum": UNIT_FLOAT,
    "nesterov": BOOL,
    "weight_decay": NONNEG_FLOAT,
    "batch_size": POS_INT,
    "schedule": one_of(SCHEDULES),
    "warmup_epochs": NONNEG_FLOAT,
    "label_smoothing": UNIT_FLOAT,
    "augment": UNIT_CLOSED,
    "grad_clip": NONNEG_FLOAT,
}
TRAIN_TABLE: dict[str, tuple[Check, Any]] = {
    key: (check, TRAIN_DEFAULTS[key]) for key, check in TRAIN_CHECKS.items()
}


def _read_train(r: _Reader, node: Any) -> tuple[dict[str, Choice], dict[str, dict[str, Choice]]]:
    """The ``train`` section: shared settings, and per-optimizer overrides.

    ``optimizer`` is either a list of names or a mapping ``name -> {setting: choice}``; a
    setting given under an optimizer is asked only when that optimizer is drawn (so SGD and
    Adam can have their own learning-rate ranges).
    """
    given = r.mapping(node, "train", ("optimizer", *TRAIN_TABLE), ("optimizer",))
    opt_node = given.pop("optimizer")
    shared = r.choices(given, "train", TRAIN_TABLE)
    if isinstance(opt_node, list) or isinstance(opt_node, str):
        names = r.choice(opt_node, "train.optimizer", one_of(OPTIMIZERS)).values
        per_opt = {name: {} for name in names}
    else:
        opts = r.mapping(opt_node, "train.optimizer", OPTIMIZERS)
        if not opts:
            raise r.fail("train.optimizer", f"expected at least one of {', '.join(OPTIMIZERS)}")
        per_opt = {}
        for name, body in opts.items():
            path = f"train.optimizer.{name}"
            body = r.mapping(body, path, TRAIN_TABLE)
            for key in body:
                if key in OPTIMIZER_ONLY and name not in OPTIMIZER_ONLY[key]:
                    only = " / ".join(OPTIMIZER_ONLY[key])
                    raise r.fail(f"{path}.{key}", f"only {only} take(s) {key}")
            per_opt[name] = {
                key: r.choice(value, f"{path}.{key}", TRAIN_TABLE[key][0])
                for key, value in body.items()
            }
    return shared, per_opt


# ----------------------------------------------------------------------------- architecture

ACTS = tuple(a for a in ACTIVATIONS if a != "none")
POOL_KINDS = ("max", "avg", "min", "lp", "mixed", "stochastic")
SE_RATIO = UNIT_CLOSED

#: Network-wide choices (spec ``defaults``): option -> (check, value when omitted).
DEFAULTS_TABLE: dict[str, tuple[Check, Any]] = {
    "act": (one_of(ACTS), "relu"),
    "norm": (one_of(NORMS), "batch"),
    "norm_position": (one_of(("before_act", "after_act")), "before_act"),
    "padding_mode": (one_of(PADDING_MODES), "zeros"),
    "se_gate": (one_of(("sigmoid", "hard_sigmoid")), "sigmoid"),
    "drop_path": (UNIT_FLOAT, 0.0),
}
#: Weight initialisation (spec ``init``).
INIT_TABLE: dict[str, tuple[Check, Any]] = {
    "scheme": (one_of(("default", "kaiming", "xavier")), "default"),
    "zero_init_residual": (BOOL, False),
}
#: The stem: one conv (``width`` channels) and, where the input leaves room, a downsampling.
STEM_TABLE: dict[str, tuple[Check, Any]] = {
    "width": (POS_INT, 16),
    "kernel": (ODD_INT, 3),
    "stride": (Check("1 or 2", "strides 1 or 2", "int", lambda v: v in (1, 2)), 1),
    "pool": (one_of(("none", *POOL_KINDS)), "none"),
}
#: Per-stage choices shared by every block type.
STAGES_TABLE: dict[str, tuple[Check, Any]] = {
    "count": (POS_INT, 3),
    "width": (POS_INT, 32),
    "repeats": (POS_INT, 1),
    "pool": (one_of(POOL_KINDS), "max"),
    "compression": (Check("a float in (0, 1]", "floats in (0, 1]", "float",
                          lambda v: 0 < v <= 1, rangeable=True), 0.5),
}  # fmt: skip
HEAD_TABLE: dict[str, tuple[Check, Any]] = {
    "conv": (NONNEG_INT, 0),
    "pool": (one_of(("avg", "max", "spp")), "avg"),
    "hidden": (NONNEG_INT, 0),
    "dropout": (UNIT_FLOAT, 0.0),
}
SCALING_TABLE: dict[str, tuple[Check, Any]] = {
    "width": (POS_FLOAT, 1.0),
    "depth": (POS_FLOAT, 1.0),
    "resolution": (POS_FLOAT, 1.0),
}
LIMITS_KEYS = ("max_params", "max_macs")

#: Searchable options of each block type (SPEC.md "Block types"); every type also takes
#: ``act``. Channel-count options are not listed: the sampler derives them from the stage
#: width so one ``stageN.width`` means the same thing for every block.
SHORTCUT = one_of(("auto", "projection"))
BLOCK_TABLE: dict[str, dict[str, Check]] = {
    "conv": {"kernel": ODD_INT, "dilation": POS_INT, "groups": POW2_INT, "se": SE_RATIO},
    "dwsep": {
        "kernel": ODD_INT, "dilation": POS_INT, "mid_norm": BOOL, "mid_act": BOOL,
        "se": SE_RATIO,
    },
    "asym": {"kernel": ODD_INT, "separate": BOOL, "se": SE_RATIO},
    "flattened": {"kernel": ODD_INT, "se": SE_RATIO},
    "mlpconv": {"kernel": ODD_INT, "layers": POS_INT, "se": SE_RATIO},
    "basic": {"shortcut": SHORTCUT, "se": SE_RATIO},
    "bottleneck": {
        "expansion": POS_INT, "groups": POW2_INT, "base_width": POS_INT, "shortcut": SHORTCUT,
        "se": SE_RATIO,
    },
    "dense": {"growth": POS_INT, "bn_size": NONNEG_INT},
    "inception": {"b3_kernel": ODD_INT},
    "inception_v3": {"form": one_of(("a", "b", "c")), "kernel": ODD_INT, "b2_kernel": ODD_INT},
    "inception_reduction": {"form": one_of(("a", "b")), "kernel": ODD_INT, "valid": BOOL},
    "inverted_residual": {"expansion": POS_INT, "kernel": ODD_INT, "se": SE_RATIO},
    "mbconv": {"expansion": POS_INT, "kernel": ODD_INT, "se": SE_RATIO},
    "fire": {"bypass": one_of(("none", "simple", "complex"))},
    "shuffle": {"kernel": ODD_INT},
    "xception": {"convs": POS_INT, "kernel": ODD_INT, "grow_first": BOOL, "first_act": BOOL},
}  # fmt: skip
#: Block types that cannot stride, as the catalog says: a downsampling stage gets a pool
#: (or, before a dense block, a DenseNet transition) in front of them.
STRIDE_ONE = frozenset(t for t in BLOCK_TABLE if BLOCKS[t].NEEDS_STRIDE_1)


def min_dims(block_type: str) -> int:
    """The fewest spatial dims a block type works on (the catalog's ``MIN_DIMS``)."""
    return BLOCKS[block_type].MIN_DIMS


#: A block entry may override these stage-level choices for its own type.
BLOCK_OVERRIDES = ("width", "repeats")


@dataclass(frozen=True)
class BlockOption:
    """One entry of ``stages.blocks``: a block type and the choices of its options."""

    label: str  # the value of ``stageN.block`` (the type, unless ``label`` is given)
    type: str
    options: dict[str, Choice]  # spec block options (kernel, expansion, act, ...)
    overrides: dict[str, Choice]  # stage-level choices this type draws instead (repeats, width)


@dataclass(frozen=True)
class Space:
    """A validated space file. Every choice is a :class:`Choice`; see the module docstring."""

    name: str
    source: str
    description: str
    dims: tuple[int, ...]
    limits: dict[str, int | None]
    defaults: dict[str, Choice]
    stem: dict[str, Choice]
    stages: dict[str, Choice]
    blocks: tuple[BlockOption, ...]
    head: dict[str, Choice]
    scaling: dict[str, Choice]
    init: dict[str, Choice]
    train: dict[str, Choice]
    optimizers: dict[str, dict[str, Choice]]
    option_names: dict[tuple[str, str], str] = field(default_factory=dict)
    """(block label, option) -> trial-name suffix: ``kernel`` when every block type that
    has a kernel offers the same choices (so they share one parameter), else ``label.kernel``."""

    def blocks_for(self, dims: int) -> tuple[BlockOption, ...]:
        """The block options usable on ``dims``-dimensional input."""
        return tuple(b for b in self.blocks if min_dims(b.type) <= dims)


def _read_blocks(r: _Reader, node: Any) -> tuple[BlockOption, ...]:
    path = "stages.blocks"
    if not isinstance(node, list) or not node:
        raise r.fail(path, f"expected a non-empty list of block entries, got {node!r}")
    out: list[BlockOption] = []
    for i, entry in enumerate(node):
        where = f"{path}[{i}]"
        if not isinstance(entry, Mapping) or "type" not in entry:
            raise r.fail(where, f"expected a mapping with a 'type', got {entry!r}")
        btype = entry["type"]
        if btype not in BLOCK_TABLE:
            raise r.fail(
                f"{where}.type", f"expected one of {', '.join(BLOCK_TABLE)}, got {btype!r}"
            )
        table = {"act": one_of(ACTS), **BLOCK_TABLE[btype]}
        allowed = ("type", "label", *table, *BLOCK_OVERRIDES)
        given = r.mapping(entry, where, allowed)
        label = given.get("label", btype)
        if not isinstance(label, str) or not re.fullmatch(r"[A-Za-z0-9_]+", label):
            raise r.fail(
                f"{where}.label", f"expected a name of letters, digits and _, got {label!r}"
            )
        if any(b.label == label for b in out):
            raise r.fail(where, f"block '{label}' is listed twice; give one a different 'label'")
        options = {
            key: r.choice(given[key], f"{where}.{key}", check)
            for key, check in table.items()
            if key in given
        }
        overrides = {
            key: r.choice(given[key], f"{where}.{key}", STAGES_TABLE[key][0])
            for key in BLOCK_OVERRIDES
            if key in given
        }
        out.append(BlockOption(label, btype, options, overrides))
    return tuple(out)


def _option_names(blocks: tuple[BlockOption, ...]) -> dict[tuple[str, str], str]:
    """Share one trial parameter per option when all block types offer the same choices."""
    names: dict[tuple[str, str], str] = {}
    for b in blocks:
        for key in (*b.options, *b.overrides):
            same = [
                o.options.get(key, o.overrides.get(key))
                for o in blocks
                if key in o.options or key in o.overrides
            ]
            shared = all(c == same[0] for c in same) and key not in ("width", "repeats")
            names[(b.label, key)] = key if shared else f"{b.label}.{key}"
    return names


def _read_space(raw: Any, name: str, source: str) -> Space:
    r = _Reader(source)
    top = r.mapping(
        raw,
        "",
        ("name", "description", "dims", "limits", "defaults", "stem", "stages", "head",
         "scaling", "init", "train"),
        ("dims", "stages", "train"),
    )  # fmt: skip
    description = top.get("description", "")
    if not isinstance(description, str):
        raise r.fail("description", f"expected a string, got {description!r}")
    dims_check = Check("1, 2 or 3", "dims 1, 2 or 3", "int", lambda v: v in (1, 2, 3))
    dims = r.choice(top["dims"], "dims", dims_check).values
    limits_node = r.mapping(top.get("limits"), "limits", LIMITS_KEYS)
    limits = {
        key: (
            None
            if limits_node.get(key) is None
            else r.value(limits_node[key], f"limits.{key}", POS_INT)
        )
        for key in LIMITS_KEYS
    }
    stages_node = r.mapping(top["stages"], "stages", (*STAGES_TABLE, "blocks"), ("blocks",))
    blocks = _read_blocks(r, stages_node.pop("blocks"))
    stages = r.choices(stages_node, "stages", STAGES_TABLE)
    count = stages["count"]
    if count.values is not None and len(count.values) > 1:
        raise r.fail(
            "stages.count",
            "expected a range {low, high} or one int (the sampler caps high by the input "
            f"size), got {list(count.values)!r}",
        )
    for d in dims:
        if not any(min_dims(b.type) <= d for b in blocks):
            raise r.fail("stages.blocks", f"no block type works on {d}-D input")
    train, optimizers = _read_train(r, top["train"])
    return Space(
        name=name,
        source=source,
        description=description,
        dims=tuple(dims),
        limits=limits,
        defaults=r.choices(top.get("defaults"), "defaults", DEFAULTS_TABLE),
        stem=r.choices(top.get("stem"), "stem", STEM_TABLE),
        stages=stages,
        blocks=blocks,
        head=r.choices(top.get("head"), "head", HEAD_TABLE),
        scaling=r.choices(top.get("scaling"), "scaling", SCALING_TABLE),
        init=r.choices(top.get("init"), "init", INIT_TABLE),
        train=train,
        optimizers=optimizers,
        option_names=_option_names(blocks),
    )


# ----------------------------------------------------------------------------- loading

#: The default space of each input dimensionality.
DEFAULT_SPACES = {1: "timeseries_1d", 2: "image", 3: "volume_3d"}


def list_spaces() -> list[str]:
    """The names of the shipped spaces (``search_spaces/<name>.yaml``), sorted."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def default_space_for(dims: int) -> str:
    """The shipped space for ``dims``-dimensional input: 1, 2 or 3."""
    if dims not in DEFAULT_SPACES:
        raise SpaceError(f"dims {dims!r}: expected 1, 2 or 3")
    return DEFAULT_SPACES[dims]


def load_space(name_or_path: str | Path) -> Space:
    """Load and validate a space: a shipped name (``image``) or a path to a ``.yaml`` file.

    Raises :class:`SpaceError` naming the file and YAML path of the first mistake, or, for an
    unknown name, listing the shipped names.
    """
    text = str(name_or_path)
    path = Path(text)
    if path.suffix.lower() not in (".yaml", ".yml") and os.sep not in text and "/" not in text:
        path = SPACES_DIR / f"{text}.yaml"
        if not path.is_file():
            raise SpaceError(
                f"unknown space {text!r}; shipped spaces: {', '.join(list_spaces())} "
                "(or give the path of a .yaml file)"
            )
    if not path.is_file():
        raise SpaceError(f"{text}: no such space file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpaceError(f"{path.name}: not valid YAML{where}: {problem}") from None
    return _read_space(raw, path.stem, path.name)


def parse_space(raw: Any, name: str = "space") -> Space:
    """Validate an already-loaded space document (a dict), e.g. one built in a test."""
    return _read_space(raw, name, f"{name}.yaml")
