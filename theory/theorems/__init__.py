"""The built-in theorems, one module each (the module is named after the theorem's id).

:data:`BUILTIN` lists them in the order ``verify`` and the documents present them (the two §3
identities first, then the catalogue); importing this package registers every one.
"""

from theory.theorem import register_theorem
from theory.theorems import (
    bias_span,
    capacity,
    convex_output,
    deeper_attention_changes,
    deeper_first_order,
    finetune_contrast,
    hierarchy,
    hierarchy_strict,
    kv_converse,
    position_shift,
    pre_ln,
    relative_attention,
    single_prefix,
)

BUILTIN = tuple(
    module.THEOREM
    for module in (
        relative_attention,
        convex_output,
        single_prefix,
        bias_span,
        pre_ln,
        kv_converse,
        hierarchy,
        hierarchy_strict,
        deeper_first_order,
        deeper_attention_changes,
        position_shift,
        finetune_contrast,
        capacity,
    )
)

for _theorem in BUILTIN:
    register_theorem(_theorem)
