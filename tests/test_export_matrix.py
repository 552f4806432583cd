"""Every block type x downsampling kind x head x dims that a shipped space can produce exports
to ONNX and TorchScript and passes the export verification (several batch sizes, rtol 1e-3,
atol 1e-5).

The axes are read from the shipped spaces themselves, so a new block, pool kind or head in a
space file is covered without touching this test. Two crossings keep it small but cover every
pair: (dims, block, head) with the downsampling kind rotating, and (dims, downsampling, head)
with a plain block. Inputs are small on purpose: the heads then see 1x1..3x3 maps, where
adaptive pooling (spatial pyramid levels 2 and 4) does not divide the input evenly.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from test_export_support import make_checkpoint

import search_spaces
from nas.export import export_checkpoint
from search_spaces.blocks import BLOCKS

SIZES = {1: [20], 2: [10, 10], 3: [6, 6, 6]}
STRIDE_ONE = {name for name, cls in BLOCKS.items() if cls.NEEDS_STRIDE_1}
#: Block types whose output width the catalog derives (``out: null``).
DERIVED_OUT = {name for name, cls in BLOCKS.items() if cls.DERIVED_OUT}
STRIDED_CONV = "strided_conv"


def _axes() -> dict[int, dict[str, list[str]]]:
    """Per dims: the block types, downsampling kinds and heads some shipped space offers."""
    axes: dict[int, dict[str, set[str]]] = {}
    for name in search_spaces.list_spaces():
        space = search_spaces.load_space(name)
        for dims in space.dims:
            a = axes.setdefault(dims, {"blocks": set(), "downs": {STRIDED_CONV}, "heads": set()})
            a["blocks"] |= {b.type for b in space.blocks_for(dims)}
            for choice in (space.stages.get("pool"), space.stem.get("pool")):
                a["downs"] |= {v for v in (choice.values if choice else ()) if v != "none"}
            if any(b.type == "dense" for b in space.blocks_for(dims)):
                a["downs"].add("transition")
            a["heads"] |= set(space.head["pool"].values)
    for a in axes.values():  # flatten is the zoo's head (VGG, AlexNet, LeNet)
        a["heads"].add("flatten")
    return {d: {k: sorted(v) for k, v in a.items()} for d, a in sorted(axes.items())}


AXES = _axes()


def _spec(dims: int, block: str, down: str, head: str) -> dict:
    """conv stem -> conv stage -> downsampling -> ``block`` stage -> ``head``."""
    stages = [{"block": {"type": "conv"}, "out": 8, "repeats": 1, "stride": 1}]
    out = None if block in DERIVED_OUT else 8
    if down == STRIDED_CONV and block not in STRIDE_ONE:
        stages.append({"block": {"type": block}, "out": out, "repeats": 1, "stride": 2})
    else:
        if down == STRIDED_CONV:  # the block cannot stride: a strided conv stage in front
            step = {"block": {"type": "conv"}, "out": 8, "repeats": 1, "stride": 2}
        elif down == "transition":
            step = {"block": {"type": "transition"}, "out": None, "repeats": 1, "stride": 2}
        else:
            pool = {"type": "pool", "kind": down, "kernel": 3, "padding": 1}
            step = {"block": pool, "out": None, "repeats": 1, "stride": 2}
        stages += [step, {"block": {"type": block}, "out": out, "repeats": 1, "stride": 1}]
    return {
        "version": 1,
        "input": {"dims": dims, "channels": 2, "size": SIZES[dims]},
        "stem": [{"type": "conv", "out": 8, "kernel": 3, "stride": 1}],
        "stages": stages,
        "head": {"pool": head, "hidden": [], "dropout": 0.0},
    }


def _block_cases() -> list:
    cases = []
    for dims, a in AXES.items():
        downs = itertools.cycle(a["downs"])
        for block, head in itertools.product(a["blocks"], a["heads"]):
            cases.append(pytest.param(dims, block, next(downs), head, id=f"{dims}d-{block}-{head}"))
    return cases


def _down_cases() -> list:
    return [
        pytest.param(dims, "basic", down, head, id=f"{dims}d-{down}-{head}")
        for dims, a in AXES.items()
        for down, head in itertools.product(a["downs"], a["heads"])
    ]


def _export(tmp_path: Path, dims: int, block: str, down: str, head: str) -> None:
    ckpt = make_checkpoint(tmp_path / "ckpt.pt", _spec(dims, block, down, head))
    res = export_checkpoint(ckpt, "onnx,torchscript", tmp_path / "out", dynamic_batch=True)
    assert set(res.files) == {"onnx", "torchscript"}
    assert res.batch_sizes == [1, 2, 7]
    assert all(diff <= 1e-3 for diff in res.max_abs_diff.values())


def test_axes_cover_the_catalog_options_the_issue_names():
    """The spaces do offer the kinds this matrix is about (guards an empty parametrization)."""
    assert set(AXES) == {1, 2, 3}
    assert {"max", "avg", "min", "lp", "mixed", "stochastic", STRIDED_CONV} <= set(AXES[2]["downs"])
    assert {"avg", "max", "spp", "flatten"} <= set(AXES[2]["heads"])
    assert {"spp"} <= set(AXES[1]["heads"])


@pytest.mark.parametrize(("dims", "block", "down", "head"), _block_cases())
def test_every_block_and_head_exports(tmp_path, dims, block, down, head):
    _export(tmp_path, dims, block, down, head)


@pytest.mark.parametrize(("dims", "block", "down", "head"), _down_cases())
def test_every_downsampling_and_head_exports(tmp_path, dims, block, down, head):
    _export(tmp_path, dims, block, down, head)
