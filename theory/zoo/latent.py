"""Multi-head latent attention (DeepSeek-V2/V3) and its atlas architecture (docs/theory.md §5.3).

Keys and values come from one compressed latent per position, ``c_j = x_j W_DKV``
(``d_latent`` wide, shared by every head), with a decoupled RoPE key shared by the heads:

    q_i = [q_i^C ; R_i q_i^R] = x_i W_Q          (per head, d_head = d_nope + d_rope)
    k_j = [c_j W_UK ; k_j^R],  k_j^R = R_j (x_j W_KR)   (W_UK per head, k^R shared)
    v_j = c_j W_UV                                  (per head)

A cache stores ``(c_j, k_j^R)``: ``d_latent + d_rope`` numbers per position instead of
``2 n_heads d_head``. The query is not compressed (DeepSeek-V2-Lite). Three contexts act on
this layer: a hidden-state prefix (through ``W_DKV`` and ``W_KR``), a latent prefix (free
``c_p`` and ``k_p^R``, :class:`theory.context.LatentPrefix`) and a per-head KV-prefix (free keys
and values after the up-projections, :class:`theory.context.KVPrefix`).
"""

from __future__ import annotations

import jax.numpy as jnp

from theory.architecture import Architecture, register_architecture
from theory.attention import attend_heads
from theory.blocks import BlockKind, register_block
from theory.context import KVPrefix, LatentPrefix
from theory.hooks import act_name
from theory.positional import rotate


def latent_shapes(arch) -> dict:
    H, k, d, c, r = arch.n_heads, arch.d_head, arch.d_model, arch.d_latent, arch.d_rope
    return {
        "attn": {
            "W_Q": (H, d, k),
            "b_Q": (H, k),
            "W_DKV": (d, c),
            "W_UK": (H, c, k - r),
            "W_UV": (H, c, k),
            "W_KR": (d, r),
            "W_O": (H, k, d),
            "b_O": (d,),
        }
    }


def split_query(arch, q):
    """(content part, RoPE part) of queries or keys ``[..., d_head]``."""
    nope = arch.d_head - arch.d_rope
    return q[..., :nope], q[..., nope:]


def latent_keys_values(p, arch, latent, rope_key):
    """Per-head keys ``[N, H, d_head]`` and values from latents ``[N, d_latent]`` and (rotated)
    RoPE keys ``[N, d_rope]``."""
    content = jnp.einsum("nc,hck->nhk", latent, p["W_UK"])
    shared = jnp.broadcast_to(rope_key[:, None, :], (*content.shape[:2], arch.d_rope))
    return jnp.concatenate([content, shared], axis=-1), jnp.einsum("nc,hck->nhk", latent, p["W_UV"])


def latent_attention(bp, arch, h, positions, mask, virtual, layer_context=None):
    """The latent attention layer (module doc); a LatentPrefix replaces the virtual positions'
    latents and RoPE keys, a KVPrefix their per-head keys and values (both used as given)."""
    p = bp["attn"]
    q_content, q_rope = split_query(arch, jnp.einsum("nd,hdk->nhk", h, p["W_Q"]) + p["b_Q"])
    q = jnp.concatenate([q_content, rotate(arch, q_rope, positions)], axis=-1)
    latent = h @ p["W_DKV"]
    rope_key = rotate(arch, (h @ p["W_KR"])[:, None, :], positions)[:, 0]
    if isinstance(layer_context, LatentPrefix):
        n_p = layer_context.latents.shape[0]
        latent = latent.at[:n_p].set(layer_context.latents.astype(latent.dtype))
        rope_key = rope_key.at[:n_p].set(layer_context.rope_keys.astype(rope_key.dtype))
    k, v = latent_keys_values(p, arch, latent, rope_key)
    if isinstance(layer_context, KVPrefix):
        n_p = layer_context.keys.shape[1]
        k = k.at[:n_p].set(jnp.swapaxes(layer_context.keys, 0, 1).astype(k.dtype))
        v = v.at[:n_p].set(jnp.swapaxes(layer_context.values, 0, 1).astype(v.dtype))
    out, record = attend_heads(p, arch, q, k, v, positions, mask, virtual)
    record.update({act_name("latent"): latent, act_name("rope_key"): rope_key})
    return out, record


def _requires(arch):
    if (
        arch.d_latent >= 1
        and 0 < arch.d_rope < arch.d_head
        and arch.d_rope % 2 == 0
        and arch.positional == "rope"
        and arch.n_kv_heads is None
        and not arch.qk_norm
    ):
        return None
    return (
        "d_latent >= 1, an even d_rope with 0 < d_rope < d_head, positional='rope', "
        "n_kv_heads=None and qk_norm=False"
    )


register_block(
    BlockKind(
        "latent",
        "multi-head latent attention (DeepSeek-V2/V3): keys and values from a shared latent, "
        "decoupled RoPE key",
        param_shapes=latent_shapes,
        requires=_requires,
        mixer=latent_attention,
        features=("attention", "latent"),
    )
)

register_architecture(
    Architecture(
        name="deepseek",
        n_layers=2,
        n_heads=4,
        d_model=32,
        d_head=8,
        d_rope=2,
        d_latent=8,
        d_mlp=64,
        d_vocab=11,
        n_ctx=32,
        block="latent",
        positional="rope",
        norm="pre",
        norm_kind="rmsnorm",
        mlp_act="gated_silu",
        default_methods=("prefix", "latent_prefix", "kv_prefix", "finetune_rank1_WQ"),
        default_run=False,
        description="DeepSeek-V2 style multi-head latent attention: latent 8, RoPE key 2, "
        "4 heads of 8, RMSNorm, SwiGLU",
    )
)
