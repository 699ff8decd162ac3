"""Activation names: the one place that spells the keys of the forward cache.

:func:`theory.model.forward` returns a flat cache keyed by TransformerLens-style hook names
(``blocks.{l}.attn.hook_pattern`` ...). Everything else builds those keys with
:func:`act_name` from a short name, so no other module writes a hook name out::

    act_name("pattern", 0)   -> "blocks.0.attn.hook_pattern"   (a key of the full cache)
    act_name("pattern")      -> "attn.hook_pattern"            (a key of one block's record)
    act_name("embed")        -> "hook_embed"                   (not per block)

Short names, their shapes (``N = n_p + n`` positions, virtual first) and meaning:

=============  ==========================  ==============================================
short name     shape                       what
=============  ==========================  ==============================================
embed          [N, d_model]                token (or soft-prompt) embeddings
pos_embed      [N, d_model]                additive position codes (schemes that add them)
resid_pre      [N, d_model]                block input (a Prefix sets its states here)
q              [N, n_heads, d_head]        queries (after RoPE)
k, v           [N, n_kv_heads, d_head]     keys and values (after RoPE / KV-prefix)
scores         [n_heads, N, N]             raw scores (softmax: the logits ``l_ij``)
pattern        [n_heads, N, N]             attention weights ``A_ij``
z              [N, n_heads, d_head]        per-head outputs ``t_i = sum_j A_ij v_j``
latent         [N, d_latent]               latent attention: key/value latent ``c_j``
rope_key       [N, d_rope]                 latent attention: decoupled RoPE key (rotated)
mixer_in       [N, d_model]                recurrent blocks: the recurrence's input ``x_t``
state_init     [*S]                        recurrent blocks: the state before position 0
decay, drive   [N, *S]                     recurrent blocks: ``a_t``, ``b_t`` of
                                           ``s_t = a_t * s_{t-1} + b_t`` (``S``: state shape)
state          [N, *S]                     recurrent blocks: the state ``s_t``
attn_out       [N, d_model]                token-mixer output (``sum_h z_h W_O[h] + b_O``)
resid_mid      [N, d_model]                after the attention residual
mlp_out        [N, d_model]                MLP output
resid_post     [N, d_model]                block output
ln_final       [n, d_model]                final normalised residual, content positions only
=============  ==========================  ==============================================
"""

from __future__ import annotations

from theory.errors import unknown_name

BLOCK_HOOKS = {
    "resid_pre": "hook_resid_pre",
    "q": "attn.hook_q",
    "k": "attn.hook_k",
    "v": "attn.hook_v",
    "scores": "attn.hook_attn_scores",
    "pattern": "attn.hook_pattern",
    "z": "attn.hook_z",
    "latent": "attn.hook_latent",
    "rope_key": "attn.hook_rope_key",
    "mixer_in": "mixer.hook_in",
    "state_init": "mixer.hook_state_init",
    "decay": "mixer.hook_decay",
    "drive": "mixer.hook_drive",
    "state": "mixer.hook_state",
    "attn_out": "hook_attn_out",
    "resid_mid": "hook_resid_mid",
    "mlp_out": "hook_mlp_out",
    "resid_post": "hook_resid_post",
}
MODEL_HOOKS = {
    "embed": "hook_embed",
    "pos_embed": "hook_pos_embed",
    "ln_final": "ln_final.hook_normalized",
}
ATTENTION_HOOKS = ("q", "k", "v", "scores", "pattern", "z")  # recorded by the attention layer


def act_name(name: str, layer: int | None = None) -> str:
    """The cache key of activation ``name`` (a short name above) at ``layer``.

    Block activations without a layer give the key inside one block's record; with a layer,
    the key of the full cache. Model-level activations take no layer.
    """
    if name in MODEL_HOOKS:
        if layer is not None:
            raise unknown_name(f"per-block activation (layer {layer})", name, BLOCK_HOOKS)
        return MODEL_HOOKS[name]
    if name not in BLOCK_HOOKS:
        raise unknown_name("activation", name, [*BLOCK_HOOKS, *MODEL_HOOKS])
    local = BLOCK_HOOKS[name]
    return local if layer is None else f"blocks.{layer}.{local}"


def block_prefix(layer: int) -> str:
    """The prefix every key of block ``layer`` in the full cache starts with."""
    return f"blocks.{layer}."


def block_record(cache: dict, layer: int) -> dict:
    """The activations of block ``layer`` from a full cache, keyed as in one block's record."""
    prefix = block_prefix(layer)
    return {key[len(prefix) :]: value for key, value in cache.items() if key.startswith(prefix)}
