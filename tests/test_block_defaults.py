"""Each block option's declared default (``OPTIONS`` / ``COMMON_OPTIONS``) is what the block
builds with when the option is left out: the keyword default of its ``__init__``."""

from __future__ import annotations

import inspect

import pytest

from search_spaces.blocks import BLOCKS, COMMON_OPTIONS
from search_spaces.blocks.base import Block


def _keyword_defaults(cls: type) -> dict[str, object]:
    """Keyword defaults along the class's ``__init__`` chain (a subclass's win)."""
    found: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for name, p in inspect.signature(init).parameters.items():
            if p.default is not inspect.Parameter.empty:
                found[name] = p.default
    return found


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_declared_defaults_are_the_built_ones(name):
    cls = BLOCKS[name]
    defaults = _keyword_defaults(cls)
    options = getattr(cls, "OPTIONS", {})
    missing = sorted(k for k in options if k not in defaults)
    assert not missing, f"{name}: options without a keyword default: {missing}"
    wrong = {
        k: (opt.default, defaults[k]) for k, opt in options.items() if defaults[k] != opt.default
    }
    assert not wrong, f"{name}: declared vs built: {wrong}"


def test_common_options_are_the_base_blocks_defaults():
    defaults = _keyword_defaults(Block)
    wrong = {
        k: (opt.default, defaults.get(k, "missing"))
        for k, opt in COMMON_OPTIONS.items()
        if defaults.get(k, "missing") != opt.default
    }
    assert not wrong, f"declared vs built: {wrong}"
