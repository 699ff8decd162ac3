"""Positional schemes.

A scheme may (a) add a vector to each token's embedding (``embed``), (b) rotate
queries and keys by their position (``rotate``, RoPE), and/or (c) add a bias to
each attention logit that depends on the query and key positions (``logit_bias``,
ALiBi).  ``relative`` declares whether content-to-content logits are unchanged
when every position is shifted by the same amount: that is what lets the
prefix theorems survive a prefix that shifts the content (docs/theory.md §1.7).

Positions are integer arrays ``[N]``; the model passes virtual positions first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from theory.registry import POSITIONAL_SCHEMES


@dataclass(frozen=True)
class PositionalScheme:
    name: str
    relative: bool
    description: str
    learned_shapes: Callable | None = None  # arch -> {param name: shape} in params["embed"]
    embed: Callable | None = None  # (embed_params, arch, positions [N]) -> [N, d_model]
    rotate: Callable | None = None  # (x [N, heads, d_head], positions [N][, base=]) -> same
    logit_bias: Callable | None = None  # (arch, q_pos [Nq], k_pos [Nk]) -> [n_heads, Nq, Nk]


def register_positional(scheme: PositionalScheme, *, replace: bool = False) -> PositionalScheme:
    """Register a positional scheme under ``scheme.name``
    (see :class:`theory.registry.Registry`)."""
    return POSITIONAL_SCHEMES.register(scheme, replace=replace)


def rotate(arch, x: Float[Array, "N heads d_head"], positions: Int[Array, " N"]):
    """``arch``'s positional rotation of queries or keys ``x`` at ``positions`` (the identity for
    schemes that rotate nothing), with the architecture's RoPE base when it sets one."""
    scheme = POSITIONAL_SCHEMES[arch.positional]
    if scheme.rotate is None:
        return x
    if getattr(arch, "rope_base", None) is None:
        return scheme.rotate(x, positions)
    return scheme.rotate(x, positions, base=arch.rope_base)


def _learned_embed(embed_params, arch, positions):
    return embed_params["W_pos"][positions]


def sinusoidal_table(positions, d_model):
    """Vaswani et al. sinusoidal codes, ``[N, d_model]``."""
    half = (d_model + 1) // 2
    freqs = 1.0 / (10000.0 ** (jnp.arange(half) * 2.0 / d_model))
    angles = positions[:, None].astype(freqs.dtype) * freqs[None, :]
    table = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1).reshape(
        positions.shape[0], 2 * half
    )
    return table[:, :d_model]


def _sinusoidal_embed(embed_params, arch, positions):
    return sinusoidal_table(positions, arch.d_model).astype(embed_params["W_E"].dtype)


def rope_rotate(x, positions, base: float = 10000.0):
    """Rotate pairs ``(x[2m], x[2m+1])`` by angle
    ``pos * base^(-2m/d_head)``; x is ``[N, heads, d_head]``."""
    d_head = x.shape[-1]
    freqs = base ** (-jnp.arange(0, d_head, 2) / d_head)
    angles = positions[:, None].astype(x.dtype) * freqs[None, :].astype(x.dtype)  # [N, d_head/2]
    cos, sin = jnp.cos(angles)[:, None, :], jnp.sin(angles)[:, None, :]
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    rotated = jnp.stack([x_even * cos - x_odd * sin, x_even * sin + x_odd * cos], axis=-1)
    return rotated.reshape(x.shape)


def alibi_slopes(n_heads: int):
    """Press et al. head slopes ``2^(-8 h / n_heads)``, h = 1..n_heads."""
    return 2.0 ** (-8.0 * jnp.arange(1, n_heads + 1) / n_heads)


def _alibi_bias(arch, q_pos, k_pos):
    distance = jnp.abs(q_pos[:, None] - k_pos[None, :])
    return -alibi_slopes(arch.n_heads)[:, None, None] * distance[None, :, :]


register_positional(
    PositionalScheme(
        "learned",
        relative=False,
        description=(
            "learned absolute position embeddings W_pos "
            "[n_ctx, d_model] added to the token embedding"
        ),
        learned_shapes=lambda arch: {"W_pos": (arch.n_ctx, arch.d_model)},
        embed=_learned_embed,
    )
)
register_positional(
    PositionalScheme(
        "sinusoidal",
        relative=False,
        description="fixed sinusoidal absolute codes added to the token embedding",
        embed=_sinusoidal_embed,
    )
)
register_positional(
    PositionalScheme(
        "rope",
        relative=True,
        description="rotary embeddings: queries and keys rotated by their position",
        rotate=rope_rotate,
    )
)
register_positional(
    PositionalScheme(
        "alibi",
        relative=True,
        description="ALiBi: logit bias -m_h |i - j| per head",
        logit_bias=_alibi_bias,
    )
)
register_positional(
    PositionalScheme(
        "none",
        relative=True,
        description="no positional information (a causal mask still orders tokens)",
    )
)
