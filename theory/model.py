"""The one transformer: a pure JAX forward pass over a single sequence.

Everything in the toolkit (theorem checks, constructions, experiments, real
weights) runs through :func:`forward`.  It processes ONE sequence; use
``jax.vmap`` for batches.

Sequence layout: the ``n_p`` virtual positions of the context come first
(sequence indices ``0..n_p-1``, positions ``0..n_p-1``), then the ``n`` content
tokens (sequence indices ``n_p..n_p+n-1``, positions
``position_offset..position_offset+n-1``).  ``position_offset`` defaults to
``n_p``, so a no-context run given ``position_offset=n_p`` sees its content at the
same positions as the prefixed run (the paper's convention); pass
``position_offset=0`` to the no-context run to shift instead.  Causal and
sliding-window masks use sequence indices, positional schemes use positions.

``attention_mask`` is a key mask over ALL ``n_p + n`` keys (virtual first).

The returned cache is a flat dict with TransformerLens hook names (no batch
dimension; ``N = n_p + n``)::

    hook_embed [N, d_model]                      token (or soft-prompt) embeddings
    hook_pos_embed [N, d_model]                  additive position codes (if any)
    blocks.{l}.hook_resid_pre [N, d_model]       block input (prefix states set here)
    blocks.{l}.attn.hook_q [N, n_heads, d_head]
    blocks.{l}.attn.hook_k / hook_v [N, n_kv_heads, d_head]   (after RoPE / KV-prefix)
    blocks.{l}.attn.hook_attn_scores [n_heads, N, N]  raw scores (softmax: logits)
    blocks.{l}.attn.hook_pattern [n_heads, N, N]      attention weights A
    blocks.{l}.attn.hook_z [N, n_heads, d_head]       per-head outputs t = A v
    blocks.{l}.hook_attn_out [N, d_model]        sum_h z_h W_O[h] + b_O
    blocks.{l}.hook_resid_mid, hook_mlp_out, hook_resid_post [N, d_model]
    ln_final.hook_normalized [n, d_model]        (content positions only)
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from theory.architecture import Architecture
from theory.attention import ATTENTION_KINDS
from theory.blocks import BLOCK_KINDS
from theory.context import (
    Context,
    HardPrompt,
    KVPrefix,
    Prefix,
    SoftPrompt,
    check_tokens,
    n_virtual,
    validate_context,
)
from theory.errors import ToolkitError
from theory.params import validate_params
from theory.positional import POSITIONAL_SCHEMES


# --------------------------------------------------------------------------- pieces


def apply_norm(p: dict, x, arch: Architecture):
    """LayerNorm or RMSNorm over the last axis with weight ``w`` (and bias ``b``)."""
    if arch.norm_kind == "rmsnorm":
        return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + arch.norm_eps) * p["w"]
    mean = jnp.mean(x, axis=-1, keepdims=True)
    centred = x - mean
    var = jnp.mean(centred * centred, axis=-1, keepdims=True)
    return centred * jax.lax.rsqrt(var + arch.norm_eps) * p["w"] + p["b"]


def _activation(name: str, x):
    if name in ("gelu", "gated_gelu"):
        return jax.nn.gelu(x, approximate=False)
    if name == "gelu_tanh":
        return jax.nn.gelu(x, approximate=True)
    if name == "gated_silu":
        return jax.nn.silu(x)
    return jax.nn.relu(x)


def mlp(p: dict, x, arch: Architecture):
    """Position-wise MLP ``[N, d_model] -> [N, d_model]`` (gated and deeper variants)."""
    h = x @ p["W_in"] + p["b_in"]
    h = _activation(arch.mlp_act, h)
    if "W_gate" in p:
        h = h * (x @ p["W_gate"])
    for i in range(arch.mlp_depth - 1):
        h = _activation(arch.mlp_act, h @ p["W_hidden"][i] + p["b_hidden"][i])
    return h @ p["W_out"] + p["b_out"]


def mask_matrix(arch: Architecture, key_mask):
    """Visibility ``[N, N]`` (query, key) from the key mask ``[N]``, causality and window."""
    N = key_mask.shape[0]
    seq = jnp.arange(N)
    visible = jnp.broadcast_to(key_mask[None, :], (N, N))
    if arch.causal:
        visible = visible & (seq[None, :] <= seq[:, None])
    if arch.window is not None:
        visible = visible & (jnp.abs(seq[:, None] - seq[None, :]) < arch.window)
    return visible


def _rms_heads(x, w, eps):
    return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps) * w


def attention_layer(p: dict, arch: Architecture, h, positions, mask, virtual, kv=None):
    """Multi-head attention on normalised inputs ``h [N, d_model]``.

    ``kv`` = (keys, values) each ``[n_kv_heads, n_p, d_head]`` replaces the keys and
    values of the first ``n_p`` positions (KV-prefix).  Returns ``(attn_out [N, d_model], record)``.
    """
    q = jnp.einsum("nd,hdk->nhk", h, p["W_Q"]) + p["b_Q"]
    k = jnp.einsum("nd,gdk->ngk", h, p["W_K"]) + p["b_K"]
    v = jnp.einsum("nd,gdk->ngk", h, p["W_V"]) + p["b_V"]
    if arch.qk_norm:
        q = _rms_heads(q, p["q_norm"]["w"], arch.norm_eps)
        k = _rms_heads(k, p["k_norm"]["w"], arch.norm_eps)
    scheme = POSITIONAL_SCHEMES[arch.positional]
    if scheme.rotate is not None:
        q = scheme.rotate(q, positions)
        k = scheme.rotate(k, positions)
    if kv is not None:
        keys, values = kv
        n_p = keys.shape[1]
        k = k.at[:n_p].set(jnp.swapaxes(keys, 0, 1).astype(k.dtype))
        v = v.at[:n_p].set(jnp.swapaxes(values, 0, 1).astype(v.dtype))
    group = arch.n_heads // arch.kv_heads
    k_rep = jnp.repeat(k, group, axis=1)
    v_rep = jnp.repeat(v, group, axis=1)
    bias = 0.0
    if scheme.logit_bias is not None:
        bias = scheme.logit_bias(arch, positions, positions).astype(q.dtype)
    scores, pattern = ATTENTION_KINDS[arch.attention].weights(q, k_rep, arch, bias, mask, virtual)
    z = jnp.einsum("hqk,khd->qhd", pattern, v_rep)
    # sum_h z_h W_O[h] as one product over the flattened heads [N, H*d_head] @ [H*d_head, d_model]
    W_O = p["W_O"]
    attn_out = z.reshape(z.shape[0], -1) @ W_O.reshape(-1, W_O.shape[-1]) + p["b_O"]
    record = {
        "attn.hook_q": q,
        "attn.hook_k": k,
        "attn.hook_v": v,
        "attn.hook_attn_scores": scores,
        "attn.hook_pattern": pattern,
        "attn.hook_z": z,
    }
    return attn_out, record


def block_forward(bp: dict, arch: Architecture, resid_pre, positions, mask, virtual, kv=None):
    """One transformer block ``[N, d_model] -> [N, d_model]``; returns (resid_post, record).

    ``mask`` is the ``[N, N]`` visibility matrix, ``virtual`` ``[N]`` marks prefix positions.
    Running this on the content activations alone (``virtual`` all False) is the
    no-prefix layer of the deeper-layer theorems.
    """
    block_kind = BLOCK_KINDS[arch.block]
    if block_kind.forward is not None:  # a registered block kind (theory/blocks.py)

        def attend(h):
            attn_out, attn_record = attention_layer(
                bp["attn"], arch, h, positions, mask, virtual, kv
            )
            return attn_out, dict(attn_record, hook_attn_out=attn_out)

        resid_post, record = block_kind.forward(bp, arch, resid_pre, attend)
        record.update({"hook_resid_pre": resid_pre, "hook_resid_post": resid_post})
        return resid_post, record
    h = apply_norm(bp["ln1"], resid_pre, arch) if arch.norm == "pre" else resid_pre
    attn_out, record = attention_layer(bp["attn"], arch, h, positions, mask, virtual, kv)
    if arch.parallel:
        resid_mid = resid_pre + attn_out
        mlp_out = mlp(bp["mlp"], h, arch) if arch.d_mlp else jnp.zeros_like(resid_pre)
        resid_post = resid_mid + mlp_out
    else:
        resid_mid = resid_pre + attn_out
        if arch.norm == "post":
            resid_mid = apply_norm(bp["ln1"], resid_mid, arch)
        if arch.d_mlp:
            mlp_in = apply_norm(bp["ln2"], resid_mid, arch) if arch.norm == "pre" else resid_mid
            mlp_out = mlp(bp["mlp"], mlp_in, arch)
            resid_post = resid_mid + mlp_out
            if arch.norm == "post":
                resid_post = apply_norm(bp["ln2"], resid_post, arch)
        else:
            mlp_out = jnp.zeros_like(resid_pre)
            resid_post = resid_mid
    record.update(
        {
            "hook_resid_pre": resid_pre,
            "hook_attn_out": attn_out,
            "hook_resid_mid": resid_mid,
            "hook_mlp_out": mlp_out,
            "hook_resid_post": resid_post,
        }
    )
    return resid_post, record


def embed(params: dict, arch: Architecture, token_embeddings, positions, token_types=None):
    """Block-0 input from token embeddings ``[N, d_model]``: add positions, types, embedding norm."""
    x = token_embeddings
    record = {"hook_embed": token_embeddings}
    scheme = POSITIONAL_SCHEMES[arch.positional]
    if scheme.embed is not None:
        pos = scheme.embed(params["embed"], arch, positions)
        record["hook_pos_embed"] = pos
        x = x + pos
    if arch.n_token_types:
        types = jnp.zeros(x.shape[0], jnp.int32) if token_types is None else token_types
        x = x + params["embed"]["W_type"][types]
    if arch.embed_norm:
        x = apply_norm(params["ln_embed"], x, arch)
    return x, record


def unembed(params: dict, arch: Architecture, resid):
    """Logits ``[n, d_vocab]`` from the final residual stream ``[n, d_model]``."""
    if "ln_final" in params:
        resid = apply_norm(params["ln_final"], resid, arch)
    return resid @ params["unembed"]["W_U"] + params["unembed"]["b_U"], resid


# --------------------------------------------------------------------------- forward


@partial(jax.jit, static_argnames=("arch", "position_offset"))
def _forward(params, arch, tokens, context, position_offset, key_mask, token_types):
    n = tokens.shape[0]
    n_p = n_virtual(context)
    positions = jnp.concatenate([jnp.arange(n_p), position_offset + jnp.arange(n)])
    W_E = params["embed"]["W_E"]
    content = W_E[tokens]
    if isinstance(context, HardPrompt):
        virtual_embed = W_E[context.tokens]
    elif isinstance(context, SoftPrompt):
        virtual_embed = context.embeddings.astype(W_E.dtype)
    else:
        virtual_embed = jnp.zeros((n_p, arch.d_model), W_E.dtype)
    types = None
    if token_types is not None:
        types = jnp.concatenate([jnp.zeros(n_p, jnp.int32), token_types.astype(jnp.int32)])
    resid, cache = embed(params, arch, jnp.concatenate([virtual_embed, content]), positions, types)
    virtual = jnp.arange(n_p + n) < n_p
    mask = mask_matrix(arch, key_mask)
    for l, bp in enumerate(params["blocks"]):
        if isinstance(context, Prefix):
            resid = resid.at[:n_p].set(context.states[l].astype(resid.dtype))
        kv = (context.keys[l], context.values[l]) if isinstance(context, KVPrefix) else None
        resid, record = block_forward(bp, arch, resid, positions, mask, virtual, kv)
        cache.update({f"blocks.{l}.{name}": value for name, value in record.items()})
    logits, normalized = unembed(params, arch, resid[n_p:])
    cache["ln_final.hook_normalized"] = normalized
    return logits, cache


def forward(
    params,
    arch: Architecture,
    tokens,
    context: Context = None,
    *,
    position_offset=None,
    attention_mask=None,
    token_types=None,
    validate: bool = True,
):
    """Run the transformer on one sequence.

    Args:
      params: parameter pytree for ``arch`` (see :mod:`theory.params`).
      tokens: content token ids ``[n]``.
      context: None, HardPrompt, SoftPrompt, Prefix or KVPrefix (``n_p`` virtual positions).
      position_offset: position of the first content token (default ``n_p``).
      attention_mask: key mask ``[n_p + n]`` (virtual keys first); default all visible.
      token_types: BERT token types ``[n]`` (default zeros).
      validate: check shapes, dtypes, vocabulary and finiteness first (skipped values
        under jit tracing, shapes always).
    Returns:
      (logits ``[n, d_vocab]`` at the content positions, cache dict of hook tensors).
    """
    if validate:
        validate_context(context, arch)
    n_p = n_virtual(context)
    offset = n_p if position_offset is None else position_offset
    if validate:
        validate_params(params, arch)
        check_tokens("tokens", tokens, arch)
        if not isinstance(offset, int) or offset < 0:
            raise ToolkitError(f"position_offset must be an int >= 0, got {offset!r}")
        n = tokens.shape[0]
        if n < 1:
            raise ToolkitError("tokens: expected at least one content token, got 0")
        last = max(offset + n, n_p)
        if last > arch.n_ctx:
            raise ToolkitError(
                f"context too long for {arch.name!r}: {n_p} virtual + {n} content tokens at "
                f"offset {offset} need {last} positions, the architecture allows n_ctx={arch.n_ctx}"
            )
        if attention_mask is not None and tuple(getattr(attention_mask, "shape", ())) != (n_p + n,):
            raise ToolkitError(
                f"attention_mask: expected a key mask of shape ({n_p + n},) = n_p + n "
                f"(virtual keys first), got shape {tuple(getattr(attention_mask, 'shape', ()))}"
            )
        if token_types is not None and tuple(getattr(token_types, "shape", ())) != (n,):
            raise ToolkitError(
                f"token_types: expected shape ({n},), got {tuple(getattr(token_types, 'shape', ()))}"
            )
    key_mask = (
        jnp.ones(n_p + tokens.shape[0], bool)
        if attention_mask is None
        else jnp.asarray(attention_mask).astype(bool)
    )
    return _forward(params, arch, tokens, context, offset, key_mask, token_types)


def virtual_states(params, arch: Architecture, context: Context, tokens, **kwargs):
    """The hidden states ``[n_layers, n_p, d_model]`` of the virtual positions (block inputs)."""
    n_p = n_virtual(context)
    _, cache = forward(params, arch, tokens, context, **kwargs)
    return jnp.stack([cache[f"blocks.{l}.hook_resid_pre"][:n_p] for l in range(arch.n_layers)])
