"""Architecture specs: validation, canonical form, JSON / YAML round-trip, hash id and the
decoded *plan* (decode, then build: timm ``decode_arch_def``).

``load_spec`` checks every field and fills every default (see SPEC.md); errors are
:class:`SpecError` naming the field path. :func:`plan` applies compound scaling and walks the
network once, without building modules, tracking channels and spatial size, so impossible
specs (too much downsampling, groups not dividing channels, ...) fail before any training.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from search_spaces.blocks import BLOCKS, COMMON_OPTIONS, Opt
from search_spaces.scaling import compound, round_channels, scale_depth, scaled_size

__all__ = [
    "SpecError",
    "SPEC_VERSION",
    "load_spec",
    "spec_to_json",
    "spec_id",
    "dump_spec",
    "plan",
    "Plan",
    "Entry",
]

SPEC_VERSION = 1
TOP_KEYS = ("version", "name", "input", "defaults", "stem", "stages", "head", "scaling", "init")

DEFAULTS: dict[str, Opt] = {
    **{k: COMMON_OPTIONS[k] for k in ("act", "norm", "norm_position", "padding_mode", "se_gate")},
    "norm_eps": Opt(1e-5, "float", 0.0, 1.0, high_open=True),
    "norm_momentum": Opt(0.1, "float", 0.0, 1.0),
    "norm_groups": Opt(32, "int", 1),
    "drop_path": Opt(0.0, "float", 0.0, 1.0, high_open=True),
}
HEAD: dict[str, Opt] = {
    "conv": Opt(None, "int_or_null", 1),
    "pool": Opt("avg", "str", choices=("avg", "max", "flatten", "spp")),
    "flatten_size": Opt(None, "size_or_null", 1),
    "spp_levels": Opt([1, 2, 4], "int_list", 1),
    "hidden": Opt([], "int_list", 1),
    "act": Opt(None, "str_or_null", choices=COMMON_OPTIONS["act"].choices),
    "dropout": Opt(0.0, "float", 0.0, 1.0, high_open=True),
    "classifier": Opt("linear", "str", choices=("linear", "conv")),
}
#: An auxiliary classifier on a stage's output (GoogLeNet, Inception v3): trained with
#: ``weight`` times its loss, never run in evaluation or exported.
AUX: dict[str, Opt] = {
    "pool": Opt("avg", "str", choices=("avg", "max")),
    "pool_kernel": Opt(5, "int", 1),
    "pool_stride": Opt(3, "int", 1),
    "pool_size": Opt(None, "size_or_null", 1),
    "channels": Opt([128], "int_list", 1),
    "kernels": Opt([1], "int_list", 1),
    "global_pool": Opt(False, "bool"),
    "hidden": Opt([], "int_list", 1),
    "dropout": Opt(0.0, "float", 0.0, 1.0, high_open=True),
    "weight": Opt(0.3, "float", 0.0),
}
SCALING: dict[str, Opt] = {
    "width": Opt(1.0, "float", 0.0, None, high_open=False),
    "depth": Opt(1.0, "float", 0.0),
    "resolution": Opt(1.0, "float", 0.0),
    "divisor": Opt(8, "int", 1),
    "phi": Opt(None, "float_or_null", 0.0),
    "alpha": Opt(1.2, "float", 1.0),
    "beta": Opt(1.1, "float", 1.0),
    "gamma": Opt(1.15, "float", 1.0),
}
INIT: dict[str, Opt] = {
    "scheme": Opt("default", "str", choices=("default", "kaiming", "xavier")),
    "zero_init_residual": Opt(False, "bool"),
}
ENTRY_KEYS = ("out", "stride")
STAGE_KEYS = ("block", "out", "repeats", "stride", "aux")


class SpecError(ValueError):
    """An architecture spec is invalid; the message starts with the field path."""


# ----------------------------------------------------------------------------- values


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _bounds(path: str, v: float, o: Opt) -> None:
    if o.low is not None and v < o.low:
        raise SpecError(f"{path}: must be >= {o.low:g}, got {v}")
    if o.high is not None and (v >= o.high if o.high_open else v > o.high):
        rel = "<" if o.high_open else "<="
        raise SpecError(f"{path}: must be {rel} {o.high:g}, got {v}")


def check_value(path: str, v: Any, o: Opt, dims: int) -> Any:
    """``v`` checked against ``o`` (type, bounds, choices) and normalised (floats as float)."""
    kind = o.kind
    if kind.endswith("_or_null"):
        if v is None:
            return None
        kind = kind[: -len("_or_null")]
    if kind == "int":
        if not _is_int(v):
            raise SpecError(f"{path}: expected an integer, got {v!r}")
        _bounds(path, v, o)
        return v
    if kind == "float":
        if not _is_num(v):
            raise SpecError(f"{path}: expected a number, got {v!r}")
        _bounds(path, v, o)
        return float(v)
    if kind == "bool":
        if not isinstance(v, bool):
            raise SpecError(f"{path}: expected true or false, got {v!r}")
        return v
    if kind == "str":
        if not isinstance(v, str) or (o.choices is not None and v not in o.choices):
            raise SpecError(
                f"{path}: expected one of {', '.join(map(str, o.choices or ()))}, got {v!r}"
            )
        return v
    if kind in ("kernel", "size"):
        if _is_int(v):
            _bounds(path, v, o)
            return v
        if not isinstance(v, list) or len(v) != dims or not all(_is_int(x) for x in v):
            raise SpecError(f"{path}: expected an integer or a list of {dims} integers, got {v!r}")
        for x in v:
            _bounds(path, x, o)
        return list(v)
    if kind == "int_list":
        if not isinstance(v, list) or not all(_is_int(x) for x in v):
            raise SpecError(f"{path}: expected a list of integers, got {v!r}")
        for i, x in enumerate(v):
            _bounds(f"{path}[{i}]", x, o)
        return list(v)
    raise AssertionError(kind)  # pragma: no cover - schema bug


def _mapping(path: str, v: Any) -> Mapping:
    if not isinstance(v, Mapping):
        raise SpecError(f"{path}: expected a mapping, got {v!r}")
    return v


def _fill(path: str, given: Any, schema: Mapping[str, Opt], dims: int, fallback=None) -> dict:
    """Check the keys of ``given`` against ``schema`` and fill missing ones."""
    given = _mapping(path, {} if given is None else given)
    unknown = sorted(set(given) - set(schema))
    if unknown:
        raise SpecError(f"{path}.{unknown[0]}: unknown key; known: {', '.join(schema)}")
    out = {}
    for key, o in schema.items():
        if key in given:
            out[key] = check_value(f"{path}.{key}", given[key], o, dims)
        elif fallback is not None and key in fallback:
            out[key] = copy.deepcopy(fallback[key])
        else:
            out[key] = copy.deepcopy(o.default)
    return out


# ----------------------------------------------------------------------------- canonical


def _block(path: str, raw: Any, defaults: dict, dims: int, extra: tuple[str, ...]) -> dict:
    """A block dict checked and filled; ``extra`` keys (stem ``out`` / ``stride``) kept aside."""
    raw = dict(_mapping(path, raw))
    type_name = raw.pop("type", None)
    if type_name not in BLOCKS:
        raise SpecError(
            f"{path}.type: expected one of {', '.join(sorted(BLOCKS))}, got {type_name!r}"
        )
    cls = BLOCKS[type_name]
    if dims < cls.MIN_DIMS:
        raise SpecError(
            f"{path}.type: {type_name!r} needs input dims >= {cls.MIN_DIMS}, got {dims}"
        )
    kept = {k: raw.pop(k) for k in extra if k in raw}
    out = _fill(path, raw, cls.options(type_name), dims, fallback=defaults)
    out["type"] = type_name
    return out | kept


def _out(path: str, v: Any) -> int | None:
    if v is None:
        return None
    if not _is_int(v) or v < 1:
        raise SpecError(f"{path}: expected a channel count >= 1 or null, got {v!r}")
    return v


def _int(path: str, v: Any, low: int = 1) -> int:
    if not _is_int(v) or v < low:
        raise SpecError(f"{path}: must be an integer >= {low}, got {v!r}")
    return v


def canonical(spec: Mapping[str, Any]) -> dict:
    """The validated spec with every default filled (structure only; see :func:`plan`)."""
    spec = _mapping("spec", spec)
    unknown = sorted(set(spec) - set(TOP_KEYS))
    if unknown:
        raise SpecError(f"{unknown[0]}: unknown key; known: {', '.join(TOP_KEYS)}")
    if spec.get("version") != SPEC_VERSION:
        raise SpecError(f"version: must be {SPEC_VERSION}, got {spec.get('version')!r}")
    name = spec.get("name", "")
    if not isinstance(name, str):
        raise SpecError(f"name: expected a string, got {name!r}")
    dims, channels, size = _input(spec.get("input"))
    defaults = _fill("defaults", spec.get("defaults"), DEFAULTS, dims)
    out = {
        "version": SPEC_VERSION,
        "name": name,
        "input": {"dims": dims, "channels": channels, "size": size},
        "defaults": defaults,
        "stem": _stem(spec.get("stem") or [], defaults, dims),
        "stages": _stages(spec.get("stages"), defaults, dims),
        "head": _head(spec.get("head"), defaults, dims),
        "scaling": _scaling(spec.get("scaling"), dims),
        "init": _fill("init", spec.get("init"), INIT, dims),
    }
    plan(out)  # channel / size walk: raises SpecError on impossible specs
    # derived outputs are written null, so equal specs hash equal
    for entry in out["stem"]:
        if _derived(entry["type"]):
            entry["out"] = None
    for stage in out["stages"]:
        if _derived(stage["block"]["type"]):
            stage["out"] = None
    return out


def _derived(block_type: str) -> bool:
    cls = BLOCKS[block_type]
    return bool(cls.DERIVED_OUT or cls.PRESERVES)


def _input(raw: Any) -> tuple[int, int, list[int]]:
    inp = dict(_mapping("input", raw))
    if set(inp) - {"dims", "channels", "size"}:
        raise SpecError(f"input.{sorted(set(inp) - {'dims', 'channels', 'size'})[0]}: unknown key")
    dims = inp.get("dims")
    if dims not in (1, 2, 3) or not _is_int(dims):
        raise SpecError(f"input.dims: expected 1, 2 or 3, got {dims!r}")
    channels = _int("input.channels", inp.get("channels"))
    size = check_value("input.size", inp.get("size"), Opt(None, "size", 1), dims)
    return dims, channels, [size] * dims if _is_int(size) else size


def _stem(raw: Any, defaults: dict[str, Any], dims: int) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise SpecError(f"stem: expected a list, got {raw!r}")
    stem = []
    for i, item in enumerate(raw):
        entry = _block(f"stem[{i}]", item, defaults, dims, ENTRY_KEYS)
        entry["out"] = _out(f"stem[{i}].out", entry.get("out"))
        entry["stride"] = _int(f"stem[{i}].stride", entry.get("stride", 1))
        stem.append(entry)
    return stem


def _stages(raw: Any, defaults: dict[str, Any], dims: int) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise SpecError(f"stages: expected a non-empty list, got {raw!r}")
    stages = []
    for i, item in enumerate(raw):
        item = _mapping(f"stages[{i}]", item)
        bad = sorted(set(item) - set(STAGE_KEYS))
        if bad:
            raise SpecError(f"stages[{i}].{bad[0]}: unknown key; known: {', '.join(STAGE_KEYS)}")
        stages.append(
            {
                "block": _block(f"stages[{i}].block", item.get("block"), defaults, dims, ()),
                "out": _out(f"stages[{i}].out", item.get("out")),
                "repeats": _int(f"stages[{i}].repeats", item.get("repeats", 1)),
                "stride": _int(f"stages[{i}].stride", item.get("stride", 1)),
                "aux": _aux(f"stages[{i}].aux", item.get("aux"), dims),
            }
        )
    return stages


def _aux(path: str, raw: Any, dims: int) -> dict[str, Any] | None:
    if raw is None:
        return None
    aux = _fill(path, raw, AUX, dims)
    if len(aux["channels"]) != len(aux["kernels"]):
        raise SpecError(
            f"{path}.kernels: one kernel per conv expected ({len(aux['channels'])} channels), "
            f"got {aux['kernels']}"
        )
    return aux


def _head(raw: Any, defaults: dict[str, Any], dims: int) -> dict[str, Any]:
    head = _fill("head", raw, HEAD, dims)
    if head["act"] is None:
        head["act"] = defaults["act"]
    if head["classifier"] == "conv" and head["hidden"]:
        raise SpecError("head.hidden: must be empty with a conv classifier")
    if head["pool"] == "spp" and not head["spp_levels"]:
        raise SpecError("head.spp_levels: must not be empty for spp")
    return head


def _scaling(raw: Any, dims: int) -> dict[str, Any]:
    scaling = _fill("scaling", raw, SCALING, dims)
    if scaling["phi"] is not None:
        d, w, r = compound(scaling["phi"], scaling["alpha"], scaling["beta"], scaling["gamma"])
        computed = {"depth": d, "width": w, "resolution": r}
        for key, value in computed.items():  # canonical specs carry the computed values
            if scaling[key] != 1.0 and not math.isclose(scaling[key], value, rel_tol=1e-9):
                raise SpecError(f"scaling.phi: give phi or scaling.{key}, not both")
        scaling.update(computed)
    for key in ("width", "depth", "resolution"):
        if scaling[key] <= 0:
            raise SpecError(f"scaling.{key}: must be > 0, got {scaling[key]}")
    return scaling


# ----------------------------------------------------------------------------- plan


@dataclass
class Entry:
    """One block to build: where it sits, its class options and its shapes."""

    path: str  # field path for errors, e.g. "stages[2].block"
    name: str  # module name, e.g. "stages.2.0"
    type: str
    opts: dict[str, Any]
    in_chs: int
    out_chs: int
    stride: int
    in_size: list[int]
    out_size: list[int]
    drop_path: float = 0.0


@dataclass
class Plan:
    """The decoded, scaled network: stem and stage entries, head input and the input shape."""

    dims: int
    in_chs: int
    size: list[int]
    stem: list[Entry] = field(default_factory=list)
    stages: list[list[Entry]] = field(default_factory=list)
    head_chs: int = 0
    head_size: list[int] = field(default_factory=list)
    head_conv: int | None = None  # the head's 1x1 conv width, scaled
    # stage index -> (its output channels, the aux head's size after its convs, aux options)
    aux: dict[int, tuple[int, list[int], dict[str, Any]]] = field(default_factory=dict)


def _scale_opts(cls: Any, opts: dict, width: float, divisor: int) -> dict:
    opts = dict(opts)
    for key in cls.CHANNEL_KEYS:
        if opts[key]:  # 0 means "none" (e.g. no reduce conv) and stays 0
            opts[key] = round_channels(opts[key], width, divisor)
    return opts


def _entry(path, name, type_name, opts, in_chs, out, stride, size, dims, orig) -> Entry:
    cls = BLOCKS[type_name]
    base = path.rsplit(".block", 1)[0]
    derived = cls.out_channels(in_chs, opts, dims)
    if derived is None:
        if out is None:
            raise SpecError(f"{base}.out: required for block type {type_name!r}")
        out_chs = out
    else:
        out_chs = derived
    if cls.NEEDS_STRIDE_1 and stride != 1:
        raise SpecError(f"{base}.stride: block type {type_name!r} needs stride 1, got {stride}")
    for key, message in cls.check(in_chs, out_chs, stride, opts, dims):
        raise SpecError(f"{path}.{key}: {message}")
    if stride > 1 and min(size) <= 1:
        raise SpecError(
            f"{base}.stride: input size {size} cannot be downsampled by {stride} (the spec "
            f"downsamples more than its input size {orig} allows)"
        )
    least = cls.min_size(opts, dims)
    if min(size) < least:
        raise SpecError(
            f"{path}: input size {size} is smaller than the block accepts ({least} per axis; "
            f"input size {orig})"
        )
    out_size = cls.out_size(size, stride, opts, dims)
    if min(out_size) < 1:
        raise SpecError(
            f"{path}: output size {out_size} from input size {size}: the kernel needs more input "
            f"than is left (input size {orig})"
        )
    mode = opts.get("padding_mode")
    if mode in ("reflect", "circular") and not cls.PRESERVES:
        pad = cls.conv_padding(opts, dims)
        if pad >= min(min(size), min(out_size)) + (mode == "circular"):
            raise SpecError(
                f"{path}.padding_mode: {mode} padding by {pad} needs a side longer than {pad}, "
                f"the block sees {size} -> {out_size} (input size {orig}); zeros or replicate "
                "pad any size"
            )
    if opts.get("norm") == "instance" and min(math.prod(size), math.prod(out_size)) == 1:
        raise SpecError(
            f"{path}.norm: instance norm needs more than one spatial position, the block sees "
            f"{size} -> {out_size} (input size {orig})"
        )
    block_opts = {k: v for k, v in opts.items() if k not in ("type", "out", "stride")}
    return Entry(path, name, type_name, block_opts, in_chs, out_chs, stride, list(size), out_size)


def _check_aux(path: str, aux: dict[str, Any], size: list[int], dims: int) -> list[int]:
    """The size the auxiliary head's pool and valid-padded convs leave (they must fit the
    stage's output size)."""
    if aux["pool_size"] is not None:
        fs = aux["pool_size"]
        size = [fs] * dims if _is_int(fs) else list(fs)
    else:
        if min(size) < aux["pool_kernel"]:
            raise SpecError(
                f"{path}.pool_kernel: {aux['pool_kernel']} is larger than the stage's output "
                f"size {size}"
            )
        size = [(n - aux["pool_kernel"]) // aux["pool_stride"] + 1 for n in size]
    for k in aux["kernels"]:
        if min(size) < k:
            raise SpecError(f"{path}.kernels: {k} is larger than the map it sees ({size})")
        size = [n - k + 1 for n in size]
    return size


def _plan_stage(
    p: Plan,
    i: int,
    st: Mapping[str, Any],
    chs: int,
    size: list[int],
    spec: Mapping[str, Any],
    orig: list[int],
) -> tuple[int, list[int]]:
    """Append stage ``i`` (its scaled repeats, and its auxiliary head) to ``p``; return the
    channels and size after it."""
    sc, dims = spec["scaling"], p.dims
    width, divisor = sc["width"], sc["divisor"]
    block = st["block"]
    cls = BLOCKS[block["type"]]
    opts = _scale_opts(cls, block, width, divisor)
    out = None if st["out"] is None else round_channels(st["out"], width, divisor)
    stage, start_chs = [], chs
    for j in range(scale_depth(st["repeats"], sc["depth"])):
        stride = st["stride"] if j == 0 else 1
        entry = _entry(
            f"stages[{i}].block", f"stages.{i}.{j}", block["type"], opts, chs, out, stride,
            size, dims, orig,
        )  # fmt: skip
        stage.append(entry)
        chs, size = entry.out_chs, entry.out_size
    if (cls.DERIVED_OUT or cls.PRESERVES) and out is not None and out != chs:
        raise SpecError(
            f"stages[{i}].out: a {block['type']!r} stage from {start_chs} channels gives "
            f"{chs}, got {out}; give null (derived)"
        )
    p.stages.append(stage)
    if st["aux"] is not None:
        aux = dict(st["aux"])
        aux["channels"] = [round_channels(c, width, divisor) for c in aux["channels"]]
        p.aux[i] = (chs, _check_aux(f"stages[{i}].aux", aux, size, dims), aux)
    return chs, size


def plan(spec: Mapping[str, Any]) -> Plan:
    """Scale and walk a canonical spec: every block with its in / out channels and sizes."""
    sc = spec["scaling"]
    width, divisor = sc["width"], sc["divisor"]
    dims = spec["input"]["dims"]
    orig = list(spec["input"]["size"])
    size = scaled_size(orig, sc["resolution"])
    p = Plan(dims=dims, in_chs=spec["input"]["channels"], size=list(size))
    chs = p.in_chs
    for i, e in enumerate(spec["stem"]):
        cls = BLOCKS[e["type"]]
        out = None if e["out"] is None else round_channels(e["out"], width, divisor)
        if out is None and cls.out_channels(chs, e, dims) is None:
            raise SpecError(f"stem[{i}].out: required for block type {e['type']!r}")
        opts = _scale_opts(cls, e, width, divisor)
        derived = cls.out_channels(chs, opts, dims)
        if derived is not None and out is not None and out != derived:
            raise SpecError(
                f"stem[{i}].out: a {e['type']!r} entry from {chs} channels gives {derived}, "
                f"got {out}; give null (derived)"
            )
        entry = _entry(
            f"stem[{i}]", f"stem.{i}", e["type"], opts, chs, out, e["stride"], size, dims, orig
        )
        p.stem.append(entry)
        chs, size = entry.out_chs, entry.out_size
    for i, st in enumerate(spec["stages"]):
        chs, size = _plan_stage(p, i, st, chs, size, spec, orig)
    residual = [e for st in p.stages for e in st if BLOCKS[e.type].RESIDUAL]
    rate = spec["defaults"]["drop_path"]
    for k, e in enumerate(residual):
        e.drop_path = rate * k / max(1, len(residual))
    head = spec["head"]
    if head["conv"] is not None:
        p.head_conv = round_channels(head["conv"], width, divisor)
    if head["pool"] == "flatten" and head["flatten_size"] is not None:
        fs = head["flatten_size"]
        size = [fs] * dims if _is_int(fs) else list(fs)
    p.head_chs, p.head_size = chs, list(size)
    return p


# ----------------------------------------------------------------------------- io


def load_spec(path_or_dict: str | Path | Mapping[str, Any]) -> dict:
    """A validated canonical spec from a dict, a .json / .yaml / .yml file path."""
    if isinstance(path_or_dict, Mapping):
        return canonical(path_or_dict)
    path = Path(path_or_dict)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec file ({exc.strerror})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(
            f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"
        ) from None
    try:
        return canonical(data)
    except SpecError as exc:
        raise SpecError(f"{path.name}: {exc}") from None


def spec_to_json(spec: Mapping[str, Any]) -> str:
    """Canonical JSON: validated, defaults filled, sorted keys, compact separators."""
    return json.dumps(canonical(spec), sort_keys=True, separators=(",", ":"))


def spec_id(spec: Mapping[str, Any]) -> str:
    """The first 12 hex digits of the sha256 of the canonical JSON."""
    return hashlib.sha256(spec_to_json(spec).encode()).hexdigest()[:12]


def dump_spec(spec: Mapping[str, Any], path: str | Path) -> Path:
    """Write the canonical spec to ``path`` as JSON (``.json``) or YAML (``.yaml`` / ``.yml``)."""
    path = Path(path)
    data = canonical(spec)
    if path.suffix == ".json":
        text = json.dumps(data, sort_keys=True, indent=2) + "\n"
    elif path.suffix in (".yaml", ".yml"):
        text = yaml.safe_dump(data, sort_keys=True)
    else:
        raise SpecError(f"{path}: expected a .json, .yaml or .yml suffix")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
