"""Theorem 2 and its longer-response extension (docs/theory.md §2): virtual tokens encode ANY map.

``N0`` virtual tokens ``s_0..s_{N0-1}`` (one per response position) make the model
answer a user token ``x`` with ``m_0(x), m_1(x), ..., m_{N0-1}(x)``; ``N0 = 1`` is
Theorem 2 (any ``m: [V] -> [V]``, i.e. ``V^V`` maps from one virtual token).

Model (one layer, two heads, 3-layer ReLU MLP, no LayerNorm, hidden size 3V + 2 N0 + 1)::

    residual = [ val (V) | tok (V) | user (V) | pos (2 N0) | out (1) ]
    W_E[t] = e_tok[t],  W_pos[p] = e_pos[p]
    s_r = sum_i (m_r(i) / V) e_val[i]                 (virtual positions 0..N0-1)
    content = [x, m_0(x), ..., m_{N0-2}(x)]            (positions N0..2 N0 - 1)

Head 0: the query at position ``N0 + r`` finds virtual position ``r`` (logit T,
others 0) and copies its ``val``.  Head 1: every query finds the user token at
position ``N0`` and copies its one-hot ``tok`` into ``user``.  MLP layer 1:
``ReLU(val[i] + user[i] - 1)`` keeps slot ``x``; two identity layers; ``W_out``
sums into ``out = z``; the scalar decoder emits the token nearest to ``z V``.
Correct for every map and input iff ``e^T > (4V - 3)(2 N0 - 1)``.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from constructions.certificates import dtype_name, scalar_certificate
from constructions.common import (
    Construction,
    Layout,
    check_size,
    check_temperature,
    scalar_decoder,
    to_jax,
    zero_params,
)
from theory.architecture import Architecture, validate_architecture
from theory.context import SoftPrompt
from theory.errors import ToolkitError


def conditional_model(
    V: int, N0: int = 1, T: float | None = None, dtype=jnp.float64
) -> Construction:
    """The map construction for vocabulary ``V`` and
    responses of ``N0`` tokens (Theorem 2: ``N0 = 1``)."""
    V = check_size("V (vocabulary size)", V, 2)
    N0 = check_size("N0 (response length)", N0, 1)
    name = dtype_name(dtype)
    if T is None:
        cert0 = scalar_certificate("conditional", V, N0, 1.0, name)
        if not math.isfinite(cert0.T_min):
            raise ToolkitError(
                f"conditional construction with V={V}, N0={N0} cannot be certified "
                f"in {name} at any temperature (largest safe V: {cert0.V_max}, "
                f"largest safe N0: {cert0.N_max}); use float64 or smaller V/N0"
            )
        T = math.ceil(cert0.T_min) + 1.0
    T = check_temperature(T)
    L = Layout(val=V, tok=V, user=V, pos=2 * N0, out=1)
    d_head = max(V, N0)
    arch = validate_architecture(
        Architecture(
            name=f"construction-conditional-V{V}-N0{N0}",
            n_layers=1,
            n_heads=2,
            d_model=L.d,
            d_head=d_head,
            d_mlp=V,
            d_vocab=V,
            n_ctx=2 * N0,
            positional="learned",
            norm="none",
            causal=True,
            mlp_act="relu",
            mlp_depth=3,
            temperature=T,
            final_norm=False,
            description=(
                "Theorem 2 construction: N0 virtual tokens "
                "encode any map from a user token to N0 tokens"
            ),
        )
    )
    P = zero_params(arch)
    P["embed"]["W_E"][np.arange(V), L["tok"]] = 1.0
    P["embed"]["W_pos"][np.arange(2 * N0), L["pos"]] = 1.0
    attn, mlp = P["blocks"][0]["attn"], P["blocks"][0]["mlp"]
    scale = math.sqrt(d_head)
    r = np.arange(N0)
    attn["W_Q"][0, L["pos"][N0 + r], r] = scale  # head 0: response r looks for virtual token r
    attn["W_K"][0, L["pos"][r], r] = 1.0
    attn["W_V"][0, L["val"], np.arange(V)] = 1.0
    attn["W_O"][0, np.arange(V), L["val"]] = 1.0
    attn["W_Q"][1, L["pos"], 0] = scale  # head 1: everyone looks for the user token
    attn["W_K"][1, L["pos"][N0], 0] = 1.0
    attn["W_V"][1, L["tok"], np.arange(V)] = 1.0
    attn["W_O"][1, np.arange(V), L["user"]] = 1.0
    mlp["W_in"][L["val"], np.arange(V)] = 1.0  # ReLU(val[i] + user[i] - 1)
    mlp["W_in"][L["user"], np.arange(V)] = 1.0
    mlp["b_in"][:] = -1.0
    mlp["W_hidden"][:] = np.eye(V)
    mlp["W_out"][:, L["out"][0]] = 1.0
    w, b = scalar_decoder(V)
    P["unembed"]["W_U"][L["out"][0], :] = w
    P["unembed"]["b_U"][:] = b
    cert = scalar_certificate("conditional", V, N0, T, name)
    return Construction(
        "conditional",
        arch,
        to_jax(P, dtype),
        V,
        T,
        n_prompt=1,
        n_out=N0,
        n_virtual=N0,
        extra={"layout": L},
        certificate=cert,
    )


def check_table(construction: Construction, table) -> np.ndarray:
    """A map as an int array ``[V]`` (N0 = 1) or
    ``[V, N0]``; ToolkitError on bad shape or values."""
    c = construction
    arr = np.asarray(table)
    if arr.ndim == 1 and c.n_out == 1:
        arr = arr[:, None]
    if arr.shape != (c.V, c.n_out) or not np.issubdtype(arr.dtype, np.integer):
        raise ToolkitError(
            f"map table: expected integer token ids of shape ({c.V}, N0={c.n_out}) (one response "
            f"per input token), got shape {arr.shape} and dtype {arr.dtype}"
        )
    if arr.min() < 0 or arr.max() >= c.V:
        raise ToolkitError(
            f"map table: responses must be token ids in [0, {c.V}), got values from {arr.min()} "
            f"to {arr.max()}"
        )
    return arr


def map_tokens(construction: Construction, table) -> SoftPrompt:
    """The N0 virtual tokens for a map ``table [V, N0]``
    (``table[x, r]`` = response token r to x)."""
    c = construction
    arr = check_table(c, table)
    L = c.extra["layout"]
    s = np.zeros((c.n_out, c.arch.d_model))
    s[:, L["val"]] = arr.T / c.V
    return SoftPrompt(jnp.asarray(s, c.dtype))


def worst_table(V: int, N0: int) -> np.ndarray:
    """A map attaining the leakage bound at the last response position for input V-1."""
    table = np.zeros((V, N0), np.int64)
    table[V - 1, N0 - 1] = V - 1
    return table
