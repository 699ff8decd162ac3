"""The one transformer: a pure JAX forward pass over a single sequence.

Everything in the toolkit (theorem checks, constructions, experiments, real
weights) runs through :func:`forward`.  It processes ONE sequence; use
``jax.vmap`` for batches, or :func:`forward_batch` for the logits of a batch that shares one
context (it runs the virtual positions once where causal attention allows it; the training
loop's forward pass).

Sequence layout: the ``n_p`` virtual positions of the context come first
(sequence indices ``0..n_p-1``, positions ``0..n_p-1``), then the ``n`` content
tokens (sequence indices ``n_p..n_p+n-1``, positions
``position_offset..position_offset+n-1``).  ``position_offset`` defaults to
``n_p``, so a no-context run given ``position_offset=n_p`` sees its content at the
same positions as the prefixed run (the paper's convention); pass
``position_offset=0`` to the no-context run to shift instead.  Causal and
sliding-window masks use sequence indices, positional schemes use positions.

``attention_mask`` is a key mask over ALL ``n_p + n`` keys (virtual first).

The returned cache is a flat dict keyed by activation names (no batch dimension;
``N = n_p + n``): :func:`theory.hooks.act_name` builds the keys and documents every
activation and its shape (``act_name("pattern", l)`` is block ``l``'s attention weights).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from theory.architecture import Architecture
from theory.attention import mask_matrix
from theory.blocks import block_forward
from theory.context import (
    Context,
    HardPrompt,
    Prefix,
    SoftPrompt,
    check_tokens,
    layer_context,
    n_virtual,
    validate_context,
)
from theory.errors import ToolkitError
from theory.hooks import act_name, block_prefix
from theory.layers import apply_norm
from theory.params import validate_params
from theory.registry import BLOCK_KINDS, POSITIONAL_SCHEMES


def embed(params: dict, arch: Architecture, token_embeddings, positions, token_types=None):
    """Block-0 input from token embeddings ``[N, d_model]``:
    add positions, types, embedding norm."""
    x = token_embeddings
    record = {act_name("embed"): token_embeddings}
    scheme = POSITIONAL_SCHEMES[arch.positional]
    if scheme.embed is not None:
        pos = scheme.embed(params["embed"], arch, positions)
        record[act_name("pos_embed")] = pos
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


def _virtual_embeddings(params, arch, context):
    """Token embeddings ``[n_p, d_model]`` of the virtual positions (zeros unless the context
    is a hard or soft prompt: a prefix sets the states itself)."""
    W_E = params["embed"]["W_E"]
    if isinstance(context, HardPrompt):
        return W_E[context.tokens]
    if isinstance(context, SoftPrompt):
        return context.embeddings.astype(W_E.dtype)
    return jnp.zeros((n_virtual(context), arch.d_model), W_E.dtype)


def _check_arch(arch) -> None:
    if not isinstance(arch, Architecture):
        raise ToolkitError(
            "arch: expected an Architecture (e.g. theory.ARCHITECTURES['gpt']), got "
            f"{type(arch).__name__} {arch!r}"[:200]
        )


def _check_length(arch: Architecture, n_p: int, n: int, offset: int) -> None:
    """At least one content token, and every position within the architecture's ``n_ctx``."""
    if n < 1:
        raise ToolkitError("tokens: expected at least one content token, got 0")
    last = max(offset + n, n_p)
    if last > arch.n_ctx:
        raise ToolkitError(
            f"context too long for {arch.name!r}: {n_p} virtual + {n} content tokens at "
            f"offset {offset} need {last} positions, the architecture allows n_ctx={arch.n_ctx}"
        )


@partial(jax.jit, static_argnames=("arch", "position_offset"))
def _forward(params, arch, tokens, context, position_offset, key_mask, token_types):
    n = tokens.shape[0]
    n_p = n_virtual(context)
    positions = jnp.concatenate([jnp.arange(n_p), position_offset + jnp.arange(n)])
    content = params["embed"]["W_E"][tokens]
    virtual_embed = _virtual_embeddings(params, arch, context)
    types = None
    if token_types is not None:
        types = jnp.concatenate([jnp.zeros(n_p, jnp.int32), token_types.astype(jnp.int32)])
    resid, cache = embed(params, arch, jnp.concatenate([virtual_embed, content]), positions, types)
    virtual = jnp.arange(n_p + n) < n_p
    mask = mask_matrix(arch, key_mask)
    for l, bp in enumerate(params["blocks"]):
        if isinstance(context, Prefix):
            resid = resid.at[:n_p].set(context.states[l].astype(resid.dtype))
        kv = layer_context(context, l)
        resid, record = block_forward(bp, arch, resid, positions, mask, virtual, kv)
        cache.update({block_prefix(l) + name: value for name, value in record.items()})
    logits, normalized = unembed(params, arch, resid[n_p:])
    cache[act_name("ln_final")] = normalized
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
      context: None or a context of :mod:`theory.context` (``n_p`` virtual positions).
      position_offset: position of the first content token (default ``n_p``).
      attention_mask: key mask ``[n_p + n]`` (virtual keys first); default all visible.
      token_types: BERT token types ``[n]`` (default zeros).
      validate: check shapes, dtypes, vocabulary and finiteness first (skipped values
        under jit tracing, shapes always).
    Returns:
      (logits ``[n, d_vocab]`` at the content positions, cache dict of hook tensors).
    """
    _check_arch(arch)
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
        _check_length(arch, n_p, n, offset)
        if attention_mask is not None and tuple(getattr(attention_mask, "shape", ())) != (n_p + n,):
            raise ToolkitError(
                f"attention_mask: expected a key mask of shape ({n_p + n},) = n_p + n "
                f"(virtual keys first), got shape {tuple(getattr(attention_mask, 'shape', ()))}"
            )
        if token_types is not None and tuple(getattr(token_types, "shape", ())) != (n,):
            raise ToolkitError(
                f"token_types: expected shape ({n},), got "
                f"{tuple(getattr(token_types, 'shape', ()))}"
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
    return jnp.stack([cache[act_name("resid_pre", l)][:n_p] for l in range(arch.n_layers)])


# --------------------------------------------------------------------------- batches


def shares_virtual_positions(arch: Architecture) -> bool:
    """Whether every sequence of a batch with one context has the same virtual positions:
    under causal attention they never see the content, and a block with the standard
    attention mixer reads nothing else across positions."""
    return arch.causal and BLOCK_KINDS[arch.block].mixer is None


@partial(jax.jit, static_argnames=("arch", "n_out"))
def _forward_shared(params, arch, tokens, context, n_out):
    """:func:`forward_batch`'s shared path: the ``n_p`` virtual positions run once, then every
    sequence's ``n`` content positions attend to their keys and values (``past``). Equal to
    the per-sequence forward only when :func:`shares_virtual_positions` holds.

    The last block runs the content positions before the ``n_out`` outputs only for their keys
    and values (their other results are unused, and XLA drops them), then the outputs'
    positions attend to those keys as to the virtual ones."""
    n = tokens.shape[1]
    n_p = n_virtual(context)
    positions = jnp.arange(n_p + n)
    seen = mask_matrix(arch, jnp.ones(n_p + n, bool))
    virtual = positions < n_p
    v_resid, _ = embed(params, arch, _virtual_embeddings(params, arch, context), positions[:n_p])
    W_E = params["embed"]["W_E"]
    c_resid = jax.vmap(lambda t: embed(params, arch, W_E[t], positions[n_p:])[0])(tokens)
    last = len(params["blocks"]) - 1
    for l, bp in enumerate(params["blocks"]):
        if isinstance(context, Prefix):
            v_resid = context.states[l].astype(v_resid.dtype)
        kv = layer_context(context, l)

        def virtual_block(resid, bp=bp, kv=kv):
            return block_forward(
                bp, arch, resid, positions[:n_p], seen[:n_p, :n_p], virtual[:n_p], kv
            )

        # a batch of one, like the content pass: a weight whose product has its own batching
        # rule (jax.custom_batching.custom_vmap, as experiments.batched_product) is then always
        # used under vmap; JAX cannot differentiate such a product outside vmap
        v_resid, record = jax.vmap(virtual_block)(v_resid[None])
        v_resid = v_resid[0]
        past = (record[act_name("k")][0], record[act_name("v")][0])

        def content_block(resid, past_k, past_v, bp=bp):
            """Block ``bp`` on the rows ``resid [m, d]`` at sequence indices ``start ..
            start + m - 1``, after the ``start`` positions whose keys and values are ``past_k`` /
            ``past_v``."""
            start, m = past_k.shape[0], resid.shape[0]
            rows = slice(start, start + m)
            past = (past_k, past_v, positions[:start])
            return block_forward(
                bp,
                arch,
                resid,
                positions[rows],
                seen[rows, : start + m],
                virtual[: start + m],
                None,
                past,
            )

        if l == last and n_out < n:
            # the content before the outputs: only its keys and values are used (by the
            # outputs' queries, after the virtual ones), so XLA drops the rest of its block
            _, record = jax.vmap(content_block, (0, None, None))(c_resid[:, : n - n_out], *past)
            past = (record[act_name("k")], record[act_name("v")])
            c_resid, _ = jax.vmap(content_block)(c_resid[:, n - n_out :], *past)
        else:
            c_resid, _ = jax.vmap(content_block, (0, None, None))(c_resid, *past)
    return jax.vmap(lambda r: unembed(params, arch, r)[0])(c_resid)


@partial(jax.jit, static_argnames=("arch",))
def _forward_each(params, arch, tokens, context):
    """:func:`forward_batch`'s general path: the per-sequence forward, vmapped."""
    n_p = n_virtual(context)
    key_mask = jnp.ones(n_p + tokens.shape[1], bool)
    return jax.vmap(lambda t: _forward(params, arch, t, context, n_p, key_mask, None)[0])(tokens)


def forward_batch(
    params,
    arch: Architecture,
    tokens,
    context: Context = None,
    *,
    n_out: int | None = None,
    validate: bool = True,
):
    """Logits ``[B, n_out, d_vocab]`` at the last ``n_out`` positions (default all ``n``) of a
    batch of sequences ``tokens [B, n]`` that share one context, as ``jax.vmap`` of
    :func:`forward` gives them (default positions, every key visible, default token types) but
    without the activation cache.

    Where :func:`shares_virtual_positions` holds (causal attention, standard attention mixer),
    the ``n_p`` virtual positions are the same for every sequence, so they run once for the
    batch and the content attends to their keys and values; this saves the share
    ``n_p / (n_p + n)`` of the per-position arithmetic (the training loop's use), and the last
    block computes only the keys and values of the positions before the ``n_out`` outputs.
    Otherwise it is the vmapped :func:`forward`.
    """
    _check_arch(arch)
    shape = tuple(getattr(tokens, "shape", ()))
    if len(shape) != 2:
        raise ToolkitError(f"tokens: expected a batch of token ids [B, n], got shape {shape}")
    n, n_p = shape[1], n_virtual(context)
    if n_out is not None and (
        isinstance(n_out, bool) or not isinstance(n_out, int) or not 1 <= n_out <= n
    ):
        raise ToolkitError(
            f"n_out: expected an int from 1 to the sequence length {n}, got {n_out!r}"
        )
    n_out = n if n_out is None else n_out
    if validate:
        validate_context(context, arch)
        validate_params(params, arch)
        check_tokens("tokens", tokens.reshape(-1), arch)
        _check_length(arch, n_p, n, n_p)
    if n_p and shares_virtual_positions(arch):
        return _forward_shared(params, arch, tokens, context, n_out)
    return _forward_each(params, arch, tokens, context)[:, n - n_out :]
