"""The block catalog: ``BLOCKS`` maps every spec block ``type`` to its class (see SPEC.md)."""

from search_spaces.blocks import (  # noqa: F401 (register)
    conv,
    dense,
    inception,
    residual,
    shuffle,
    simple,
)
from search_spaces.blocks.base import BLOCKS, COMMON_OPTIONS, Block, Opt, get_block

__all__ = ["BLOCKS", "COMMON_OPTIONS", "Block", "Opt", "get_block"]
