"""Attention kinds: how queries and keys become attention weights.

One head (THEORY.md §1): logit ``l_ij = T q_i . k_j / sqrt(k)`` (plus a positional
bias for ALiBi), weight ``A_ij`` over the keys ``C(i)`` that query ``i`` may see.

An :class:`AttentionKind` maps queries, keys and the visibility mask to the raw
scores (``hook_attn_scores``) and the weights (``hook_pattern``).  ``normalised``
declares whether the weights of a row are a normalised share of a common
denominator (softmax, linear attention, off-by-one softmax).  For such kinds the
prefix theorems predict content weights rescaled by ``1 - (prefix mass)``; for an
unnormalised kind (sigmoid) the predicted factor is 1 (THEORY.md §3, and the
architecture atlas).

Shapes: q ``[Nq, n_heads, d_head]``, k ``[Nk, n_heads, d_head]`` (key/value heads
already repeated for grouped-query attention), bias ``[n_heads, Nq, Nk]``,
mask ``[Nq, Nk]`` bool, virtual ``[Nk]`` bool (True on prefix positions).
Returns scores and pattern, both ``[n_heads, Nq, Nk]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp


@dataclass(frozen=True)
class AttentionKind:
    name: str
    normalised: bool
    weights: Callable   # (q, k, arch, bias, mask, virtual) -> (scores, pattern)
    description: str


ATTENTION_KINDS: dict[str, AttentionKind] = {}


def register_attention(kind: AttentionKind) -> AttentionKind:
    """Register an attention kind under ``kind.name``."""
    ATTENTION_KINDS[kind.name] = kind
    return kind


def scaled_logits(q, k, arch, bias):
    """``T q.k / sqrt(d_head) + bias``, shape ``[n_heads, Nq, Nk]``."""
    logits = jnp.einsum("qhd,khd->hqk", q, k) * (arch.temperature / jnp.sqrt(q.shape[-1]).astype(q.dtype))
    return logits + bias


def masked_exp(logits, mask):
    """``exp(l - max_visible l)`` on visible keys, 0 elsewhere (row max taken over visible keys)."""
    neg = jnp.finfo(logits.dtype).min
    shifted = jnp.where(mask[None], logits, neg)
    row_max = jax.lax.stop_gradient(jnp.max(shifted, axis=-1, keepdims=True))
    return jnp.where(mask[None], jnp.exp(shifted - row_max), 0.0), row_max


def safe_divide(num, den):
    """num / den, with 0 where den == 0 (a query that sees no key)."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def _softmax_weights(q, k, arch, bias, mask, virtual):
    logits = scaled_logits(q, k, arch, bias)
    e, _ = masked_exp(logits, mask)
    return logits, safe_divide(e, e.sum(-1, keepdims=True))


def _softmax_prefix_outside_denominator(q, k, arch, bias, mask, virtual):
    """NEGATIVE CONTROL: the prefix keys get a numerator but are left out of the denominator."""
    logits = scaled_logits(q, k, arch, bias)
    e, _ = masked_exp(logits, mask)
    denominator = jnp.where(virtual[None, None, :], 0.0, e).sum(-1, keepdims=True)
    return logits, safe_divide(e, denominator)


register_attention(AttentionKind(
    "softmax", normalised=True, weights=_softmax_weights,
    description="softmax over the visible keys (the paper's attention)"))
register_attention(AttentionKind(
    "broken_prefix_denominator", normalised=True, weights=_softmax_prefix_outside_denominator,
    description="negative control: softmax with the prefix left out of the denominator (a wrong implementation)"))
