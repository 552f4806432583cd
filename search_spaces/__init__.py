"""What is searched: the block catalog, architecture specs, the builder, the cost model and
the zoo (see ``search_spaces/SPEC.md``), plus the search-space files and sampler.

Imports only torch, numpy, PyYAML and the standard library.
"""

from search_spaces.builder import build
from search_spaces.cost import CostReport, count
from search_spaces.sampler import sample
from search_spaces.scaling import compound, round_channels, scale_depth
from search_spaces.space import Space, SpaceError, default_space_for, list_spaces, load_space
from search_spaces.spec import SpecError, dump_spec, load_spec, spec_id, spec_to_json
from search_spaces.zoo import list_zoo, load_zoo

__all__ = [
    "load_spec",
    "spec_id",
    "spec_to_json",
    "dump_spec",
    "build",
    "count",
    "CostReport",
    "SpecError",
    "list_zoo",
    "load_zoo",
    "round_channels",
    "scale_depth",
    "compound",
    "load_space",
    "list_spaces",
    "default_space_for",
    "Space",
    "SpaceError",
    "sample",
]
