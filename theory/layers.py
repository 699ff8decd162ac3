"""Position-wise pieces of a block: normalisation and the MLP.

Shapes: ``x [N, d_model]`` (any leading axes work for the norm). Parameter layouts are those of
:mod:`theory.params`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from theory.architecture import Architecture


def apply_norm(
    p: dict, x: Float[Array, "*batch d"], arch: Architecture
) -> Float[Array, "*batch d"]:
    """LayerNorm or RMSNorm over the last axis with weight ``w`` (and bias ``b``)."""
    if arch.norm_kind == "rmsnorm":
        return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + arch.norm_eps) * p["w"]
    mean = jnp.mean(x, axis=-1, keepdims=True)
    centred = x - mean
    var = jnp.mean(centred * centred, axis=-1, keepdims=True)
    return centred * jax.lax.rsqrt(var + arch.norm_eps) * p["w"] + p["b"]


def activation(name: str, x: Array) -> Array:
    """The MLP non-linearity ``name`` (one of ``theory.architecture.MLP_ACTIVATIONS``)."""
    if name in ("gelu", "gated_gelu"):
        return jax.nn.gelu(x, approximate=False)
    if name == "gelu_tanh":
        return jax.nn.gelu(x, approximate=True)
    if name == "gated_silu":
        return jax.nn.silu(x)
    return jax.nn.relu(x)


def mlp(p: dict, x: Float[Array, "N d_model"], arch: Architecture) -> Float[Array, "N d_model"]:
    """Position-wise MLP ``[N, d_model] -> [N, d_model]`` (gated and deeper variants)."""
    h = x @ p["W_in"] + p["b_in"]
    h = activation(arch.mlp_act, h)
    if "W_gate" in p:
        h = h * (x @ p["W_gate"])
    for i in range(arch.mlp_depth - 1):
        h = activation(arch.mlp_act, h @ p["W_hidden"][i] + p["b_hidden"][i])
    return h @ p["W_out"] + p["b_out"]
