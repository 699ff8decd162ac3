"""The built-in theorems, one module each (the module is named after the theorem's id).

:data:`BUILTIN` lists them in the order ``verify`` and the documents present them (the two §3
identities first, then the catalogue, then the families of docs/theory.md §5); importing this
package registers every one.
"""

from theory.theorem import register_theorem
from theory.theorems import (
    bias_span,
    capacity,
    convex_output,
    deeper_attention_changes,
    deeper_first_order,
    differential_maps,
    finetune_contrast,
    hierarchy,
    hierarchy_strict,
    initial_state,
    initial_state_strict,
    kv_bias_prefix,
    kv_bias_rescales,
    kv_converse,
    latent_hierarchy,
    latent_strict,
    position_shift,
    pre_ln,
    recurrent_bias,
    recurrent_state,
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
        recurrent_state,
        recurrent_bias,
        initial_state,
        initial_state_strict,
        differential_maps,
        latent_hierarchy,
        latent_strict,
        kv_bias_prefix,
        kv_bias_rescales,
    )
)

for _theorem in BUILTIN:
    register_theorem(_theorem)
