"""Learned key/value biases (attention sinks) and their atlas architecture (docs/theory.md §5.4).

Every layer has a learned key ``k_s`` and value ``v_s`` per key/value head that every query
attends to, next to the sequence's own keys (PyTorch's ``add_bias_kv``; sinks with ``v_s = 0``
are logit-only sinks). The key is used as given (no rotation), like a cached key, and sits at
position 0 for a positional logit bias. The recorded pattern covers the sequence's keys only,
so each row sums to ``1 - s_i``, with ``s_i`` the sink's share.
"""

from __future__ import annotations

import jax.numpy as jnp

from theory.architecture import Architecture, register_architecture
from theory.attention import attention_layer
from theory.blocks import BlockKind, register_block
from theory.hooks import act_name
from theory.zoo.modern import SMALL

SINK_SHAPES = lambda arch: {  # noqa: E731
    "sink": {"k_sink": (arch.kv_heads, arch.d_head), "v_sink": (arch.kv_heads, arch.d_head)}
}


def sink_keys_values(bp, layer_context=None):
    """The layer's sink as one more cached position ``([G, 1, d_head], [G, 1, d_head])``,
    followed by a KV-prefix's keys and values when there is one."""
    keys, values = bp["sink"]["k_sink"][:, None], bp["sink"]["v_sink"][:, None]
    if layer_context is not None:
        keys = jnp.concatenate([keys, layer_context.keys.astype(keys.dtype)], axis=1)
        values = jnp.concatenate([values, layer_context.values.astype(values.dtype)], axis=1)
    return keys, values


def sink_attention(bp, arch, h, positions, mask, virtual, layer_context=None):
    """Attention over the sink and the sequence: one extra position in front (position 0, seen
    by every query, holding the sink's key and value); its row and column are dropped from the
    record."""
    N = h.shape[0]
    h1 = jnp.concatenate([jnp.zeros((1, h.shape[1]), h.dtype), h])
    positions1 = jnp.concatenate([jnp.zeros(1, positions.dtype), positions])
    mask1 = jnp.ones((N + 1, N + 1), bool).at[1:, 1:].set(mask).at[0, 1:].set(False)
    virtual1 = jnp.concatenate([jnp.zeros(1, bool), virtual])
    kv = sink_keys_values(bp, layer_context)
    out, record = attention_layer(bp["attn"], arch, h1, positions1, mask1, virtual1, kv)
    per_head = (act_name("scores"), act_name("pattern"))
    record = {
        name: (value[:, 1:, 1:] if name in per_head else value[1:])
        for name, value in record.items()
    }
    return out[1:], record


register_block(
    BlockKind(
        "kv_bias",
        "standard block whose attention also sees a learned key/value bias (an attention sink)",
        param_shapes=SINK_SHAPES,
        mixer=sink_attention,
        features=("attention", "projections", "kv_bias"),
    )
)

SINK_CLOSED_FORM = (
    "the sink's exp(l_is) joins every denominator: A^pt_i0 = e_i0/(e_is + e_i0 + Z_i), not "
    "e_i0/(e_i0 + Z_i); the general identities hold (docs/theory.md §5.4)"
)
SINK_POSITION = (
    "the sink's key is not rotated with the content: shifting the content rotates every query "
    "against the fixed sink key, which changes the sink's share (docs/theory.md §5.4)"
)

register_architecture(
    Architecture(
        name="attn-sink",
        n_layers=2,
        block="kv_bias",
        positional="rope",
        norm="pre",
        norm_kind="rmsnorm",
        mlp_act="gated_silu",
        default_run=False,
        description="learned key/value bias per layer and head (attention sink), RoPE, RMSNorm",
        **SMALL,
        expectations=(
            ("single_prefix", "fails", SINK_CLOSED_FORM),
            ("position_shift", "fails", SINK_POSITION),
        ),
    )
)
