"""Attention: how queries and keys become weights (attention kinds), and the multi-head layer.

One head (docs/theory.md §1.2): logit ``l_ij = T q_i . k_j / sqrt(d_head)`` (plus a positional
bias such as ALiBi's), weight ``A_ij`` over the keys ``C(i)`` that query ``i`` may see, output
``t_i = sum_j A_ij v_j``.

An :class:`AttentionKind` turns queries, keys, a logit bias and the visibility mask into

* ``scores`` (recorded as the ``scores`` activation): the raw per-key quantity the kind
  computes before normalising. For softmax kinds these are the logits ``l_ij``; for linear
  attention the kernel values ``phi(q_i) . phi(k_j)``; for sigmoid attention the shifted
  logits. Theorems that read scores declare which kinds they apply to.
* ``pattern``: the weights ``A_ij`` (0 on invisible keys).

``normalised`` declares whether the weights of a row are shares of one common denominator
(softmax, off-by-one softmax, normalised linear attention). For such kinds, when each key's
score does not depend on which other keys are present (condition (S) of docs/theory.md §1.2;
scalable-softmax violates it), a prefix rescales the content weights by ``c_i = 1 - m_i``
(``m_i`` the prefix mass); for an unnormalised kind (sigmoid) the predicted factor is
``c_i = 1`` (docs/theory.md §3.10.4).

Shapes: ``q [Nq, n_heads, d_head]``, ``k [Nk, n_heads, d_head]`` (key/value heads already
repeated for grouped-query attention), ``bias [n_heads, Nq, Nk]`` (or a scalar 0),
``mask [Nq, Nk]`` bool, ``virtual [Nk]`` bool: True on the virtual (prefix) positions, which
come first. Only negative controls read ``virtual``: a correct kind treats every visible key
alike. Returns ``(scores, pattern)``, both ``[n_heads, Nq, Nk]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from theory.architecture import Architecture
from theory.errors import ToolkitError
from theory.hooks import act_name
from theory.positional import rotate
from theory.registry import ATTENTION_KINDS, POSITIONAL_SCHEMES


@dataclass(frozen=True)
class AttentionKind:
    """``weights(q, k, arch, bias, mask, virtual) -> (scores, pattern)`` (see the module doc).

    ``derivation`` (optional): ``() -> theory.symbolic.Derivation`` of how a prefix acts on
    this kind when that differs from plain softmax; the atlas renders it and the tests check
    every step. ``features``: names the kind adds to an architecture's features (theorems that
    need them name them in ``Theorem.requires``).
    """

    name: str
    normalised: bool
    weights: Callable
    description: str
    derivation: Callable | None = None
    features: tuple = ()


def _check_kind(kind: AttentionKind) -> None:
    if not callable(kind.weights):
        raise ToolkitError(
            f"attention kind {kind.name!r}: weights must be callable, got {kind.weights!r}"
        )


def register_attention(kind: AttentionKind, *, replace: bool = False) -> AttentionKind:
    """Register an attention kind under ``kind.name`` (see :class:`theory.registry.Registry`)."""
    _check_kind(kind)
    return ATTENTION_KINDS.register(kind, replace=replace)


def scaled_logits(
    q: Float[Array, "Nq H dh"], k: Float[Array, "Nk H dh"], arch: Architecture, bias
) -> Float[Array, "H Nq Nk"]:
    """``T q.k / sqrt(d_head) + bias``: the inverse temperature ``T = arch.temperature`` and the
    ``1/sqrt(d_head)`` scale multiply every logit alike, virtual keys included."""
    # sqrt(d_head) in q's dtype: jnp.sqrt of a Python int is float64 under x64
    scale = arch.temperature / jnp.sqrt(jnp.asarray(q.shape[-1], q.dtype))
    logits = jnp.einsum("qhd,khd->hqk", q, k) * scale
    return logits + bias


def masked_exp(logits: Float[Array, "H Nq Nk"], mask: Bool[Array, "Nq Nk"]):
    """``exp(l - max_visible l)`` on visible keys, 0 elsewhere; also returns the row max."""
    neg = jnp.finfo(logits.dtype).min
    shifted = jnp.where(mask[None], logits, neg)
    row_max = jax.lax.stop_gradient(jnp.max(shifted, axis=-1, keepdims=True))
    zero = jnp.zeros((), logits.dtype)  # typed: a Python 0.0 is a float64 operand under x64
    return jnp.where(mask[None], jnp.exp(shifted - row_max), zero), row_max


def safe_divide(num: Array, den: Array) -> Array:
    """num / den, with 0 where den == 0 (a query that sees no key)."""
    ok = den > 0
    zero, one = jnp.zeros((), num.dtype), jnp.ones((), den.dtype)
    return jnp.where(ok, num / jnp.where(ok, den, one), zero)


def _softmax_weights(q, k, arch, bias, mask, virtual):
    logits = scaled_logits(q, k, arch, bias)
    e, _ = masked_exp(logits, mask)
    return logits, safe_divide(e, e.sum(-1, keepdims=True))


def _softmax_prefix_outside_denominator(q, k, arch, bias, mask, virtual):
    """NEGATIVE CONTROL: the virtual keys get a numerator but are left out of the denominator."""
    logits = scaled_logits(q, k, arch, bias)
    e, _ = masked_exp(logits, mask)
    denominator = jnp.where(virtual[None, None, :], 0.0, e).sum(-1, keepdims=True)
    return logits, safe_divide(e, denominator)


register_attention(
    AttentionKind(
        "softmax",
        normalised=True,
        weights=_softmax_weights,
        description="softmax over the visible keys (the paper's attention)",
    )
)
register_attention(
    AttentionKind(
        "broken_prefix_denominator",
        normalised=True,
        weights=_softmax_prefix_outside_denominator,
        description="negative control: softmax with the prefix left out of the denominator "
        "(a wrong implementation)",
    )
)


def mask_matrix(arch: Architecture, key_mask: Bool[Array, " N"]) -> Bool[Array, "N N"]:
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


def attention_layer(
    p: dict,
    arch: Architecture,
    h: Float[Array, "N d_model"],
    positions: Int[Array, " N"],
    mask: Bool[Array, "N Nk"],
    virtual: Bool[Array, " Nk"],
    kv: tuple | None = None,
    past: tuple | None = None,
) -> tuple[Float[Array, "N d_model"], dict]:
    """Multi-head attention on normalised inputs ``h [N, d_model]``.

    ``kv`` = (keys, values), each ``[n_kv_heads, n_p, d_head]``, replaces the keys and values
    of the first ``n_p`` positions (KV-prefix; used as given: no norm, no rotation).

    ``past`` = (keys ``[n_past, n_kv_heads, d_head]``, values (the same), their positions
    ``[n_past]``): keys and values computed earlier (rotated already), put in front of this
    layer's own, as a KV cache is. The queries are then the ``N`` rows of ``h`` only: ``mask``
    is ``[N, n_past + N]`` and ``virtual`` ``[n_past + N]``; :func:`theory.model.forward_batch`
    uses it to run the virtual positions once for a batch.

    Returns ``(attn_out [N, d_model], record)`` with the attention activations
    (:mod:`theory.hooks`); with ``past``, ``k`` / ``v`` / ``scores`` / ``pattern`` cover every key.
    """
    q = jnp.einsum("nd,hdk->nhk", h, p["W_Q"]) + p["b_Q"]
    k = jnp.einsum("nd,gdk->ngk", h, p["W_K"]) + p["b_K"]
    v = jnp.einsum("nd,gdk->ngk", h, p["W_V"]) + p["b_V"]
    if arch.qk_norm:
        q = _rms_heads(q, p["q_norm"]["w"], arch.norm_eps)
        k = _rms_heads(k, p["k_norm"]["w"], arch.norm_eps)
    q = rotate(arch, q, positions)
    k = rotate(arch, k, positions)
    if kv is not None:
        keys, values = kv
        n_p = keys.shape[1]
        k = k.at[:n_p].set(jnp.swapaxes(keys, 0, 1).astype(k.dtype))
        v = v.at[:n_p].set(jnp.swapaxes(values, 0, 1).astype(v.dtype))
    key_positions = positions
    if past is not None:
        past_k, past_v, past_positions = past
        k = jnp.concatenate([past_k.astype(k.dtype), k])
        v = jnp.concatenate([past_v.astype(v.dtype), v])
        key_positions = jnp.concatenate([past_positions, positions])
    return attend_heads(p, arch, q, k, v, positions, mask, virtual, key_positions)


def attend_heads(
    p: dict,
    arch: Architecture,
    q: Float[Array, "N H dh"],
    k: Float[Array, "Nk G dh"],
    v: Float[Array, "Nk G dh"],
    positions: Int[Array, " N"],
    mask: Bool[Array, "N Nk"],
    virtual: Bool[Array, " Nk"],
    key_positions: Int[Array, " Nk"] | None = None,
) -> tuple[Float[Array, "N d_model"], dict]:
    """The heads' weights (the architecture's attention kind), outputs ``z`` and ``attn_out`` from
    queries, keys and values (after rotation); ``p`` holds ``W_O`` and ``b_O``.
    ``positions`` are the queries' positions, ``key_positions`` the keys' (default: the same).
    Returns ``(attn_out, record)`` with the activations q, k, v, scores, pattern, z."""
    group = arch.n_heads // arch.kv_heads
    k_rep = jnp.repeat(k, group, axis=1)
    v_rep = jnp.repeat(v, group, axis=1)
    bias = 0.0
    scheme = POSITIONAL_SCHEMES[arch.positional]
    if scheme.logit_bias is not None:
        k_pos = positions if key_positions is None else key_positions
        bias = scheme.logit_bias(arch, positions, k_pos).astype(q.dtype)
    kind = ATTENTION_KINDS[arch.attention]
    scores, pattern = kind.weights(q, k_rep, arch, bias, mask, virtual)
    z = jnp.einsum("hqk,khd->qhd", pattern, v_rep)
    # sum_h z_h W_O[h] as one product over the flattened heads [N, H*d_head] @ [H*d_head, d_model]
    W_O = p["W_O"]
    attn_out = z.reshape(z.shape[0], -1) @ W_O.reshape(-1, W_O.shape[-1]) + p["b_O"]
    values = {"q": q, "k": k, "v": v, "scores": scores, "pattern": pattern, "z": z}
    record = {act_name(name): value for name, value in values.items()}
    return attn_out, record
