"""Registered theorems: importing this package registers every one of them."""

from theory.theorems import relative_attention, convex_output  # noqa: F401,I001  (registry order)
from theory.theorems import (  # noqa: F401,I001  the catalogue (issue 3), in the order of THEORY.md
    single_prefix,
    bias_span,
    pre_ln,
    kv_converse,
    hierarchy,
    hierarchy_strict,
    deeper_layers,
    deeper_attention,
    position_shift,
    finetune_contrast,
    capacity,
)
