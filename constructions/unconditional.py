"""Theorem 1 (docs/theory.md §2): one virtual token makes greedy decoding emit ANY sequence.

Model (one layer, one head, 3-layer ReLU MLP, no LayerNorm, hidden size 2N + 3)::

    residual = [ val (N) | tok (1) | pos (N+1) | out (1) ]
    W_E[t]   = (t/V) e_tok  (t < V),   W_E[BOS] = 0,   W_pos[p] = e_pos[p]
    virtual token s = sum_i (y_i / V) e_val[i]            (at position 0)
    content  = [BOS, y_0, ..., y_{N-2}]                   (positions 1..N)

Every query's key is "position 0" (``q.k = sqrt(d_head)`` against position 0,
0 otherwise), so position ``p`` puts ``A = e^T/(e^T + p)`` on the virtual token
and copies ``A s + (leak)`` into ``val``.  The MLP keeps coordinate ``p-1``:
``ReLU(val[i] + pos[i+1] - 1)`` is ``val[p-1]`` for ``i = p-1`` and 0 otherwise;
two identity ReLU layers pass it on and ``W_out`` sums it into ``out = z``.
The unembedding is the scalar decoder (``argmax_k -(z - k/V)^2``), so position
``p`` emits ``y_{p-1}`` whenever the leakage stays below ``1/(2V)``:
``e^T > (2V - 3) N`` (see :mod:`constructions.certificates`).

Hard tokens: ``W_V`` also copies ``tok`` into every value slot, so a hard token
``t`` at position 0 produces the constant completion ``t t t ...``: exactly V
distinct completions, the most a single hard token can reach.
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


def default_temperature(V: int, N: int, dtype="float64") -> float:
    """The smallest safe T for (V, N, dtype) plus 1 (a margin of e^1 in leaked mass)."""
    cert = scalar_certificate("unconditional", V, N, 1.0, dtype, with_limits=False)
    return math.ceil(cert.T_min) + 1.0


def unconditional_model(V: int, N: int, T: float | None = None, dtype=jnp.float64) -> Construction:
    """The Theorem-1 model for vocabulary size ``V`` (plus BOS = V) and length ``N``.

    ``T`` defaults to :func:`default_temperature`; the returned construction carries its
    certificate.  Raises ToolkitError if no temperature makes (V, N) safe in ``dtype``.
    """
    V = check_size("V (vocabulary size)", V, 2)
    N = check_size("N (sequence length)", N, 1)
    name = dtype_name(dtype)
    if T is None:
        cert0 = scalar_certificate("unconditional", V, N, 1.0, name)
        if not math.isfinite(cert0.T_min):
            raise ToolkitError(
                f"unconditional construction with V={V}, N={N} cannot be certified in {name} "
                f"at any temperature (largest safe V for this N: {cert0.V_max}, largest safe "
                f"N for this V: {cert0.N_max}); use a larger dtype (float64) or smaller V/N"
            )
        T = default_temperature(V, N, name)
    T = check_temperature(T)
    L = Layout(val=N, tok=1, pos=N + 1, out=1)
    arch = validate_architecture(
        Architecture(
            name=f"construction-unconditional-V{V}-N{N}",
            n_layers=1,
            n_heads=1,
            d_model=L.d,
            d_head=N,
            d_mlp=N,
            d_vocab=V + 1,
            n_ctx=N + 1,
            positional="learned",
            norm="none",
            causal=True,
            mlp_act="relu",
            mlp_depth=3,
            temperature=T,
            final_norm=False,
            description=(
                "Theorem 1 construction: one virtual token controls the whole greedy output"
            ),
        )
    )
    P = zero_params(arch)
    P["embed"]["W_E"][:V, L["tok"][0]] = np.arange(V) / V
    P["embed"]["W_pos"][np.arange(N + 1), L["pos"]] = 1.0
    attn, mlp = P["blocks"][0]["attn"], P["blocks"][0]["mlp"]
    attn["W_Q"][0, L["pos"], 0] = math.sqrt(N)  # every query ...
    attn["W_K"][0, L["pos"][0], 0] = 1.0  # ... looks for position 0
    attn["W_V"][0, L["val"], np.arange(N)] = 1.0  # values: the packed slots ...
    attn["W_V"][0, L["tok"][0], :] = 1.0  # ... or a hard token's t/V everywhere
    attn["W_O"][0, np.arange(N), L["val"]] = 1.0
    mlp["W_in"][L["val"], np.arange(N)] = 1.0  # ReLU(val[i] + pos[i+1] - 1)
    mlp["W_in"][L["pos"][1:], np.arange(N)] = 1.0
    mlp["b_in"][:] = -1.0
    mlp["W_hidden"][:] = np.eye(N)
    mlp["W_out"][:, L["out"][0]] = 1.0
    w, b = scalar_decoder(V)
    P["unembed"]["W_U"][L["out"][0], :V] = w
    P["unembed"]["b_U"][:V] = b
    P["unembed"]["b_U"][V] = -1.0  # BOS is never emitted
    cert = scalar_certificate("unconditional", V, N, T, name)
    return Construction(
        "unconditional",
        arch,
        to_jax(P, dtype),
        V,
        T,
        n_prompt=1,
        n_out=N,
        n_virtual=1,
        bos=V,
        extra={"layout": L},
        certificate=cert,
    )


def virtual_token(construction: Construction, sequence) -> SoftPrompt:
    """The single virtual token ``s = sum_i (y_i / V) e_val[i]``
    that makes the model emit ``sequence``.

    ``sequence``: token ids in ``[0, V)``, length at most N (shorter ones are padded with
    token 0 and only their first ``len`` outputs are meant).
    """
    c = construction
    ids = np.asarray(sequence)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer) or ids.size == 0:
        raise ToolkitError(
            f"sequence: expected a non-empty 1-D list of token ids, got {sequence!r}"
        )
    if ids.size > c.n_out:
        raise ToolkitError(
            f"sequence: length {ids.size} is longer than this model's N={c.n_out}; "
            f"build the model with N >= {ids.size}"
        )
    if ids.min() < 0 or ids.max() >= c.V:
        raise ToolkitError(
            f"sequence: token ids must lie in [0, {c.V}), got ids from {ids.min()} to {ids.max()}"
        )
    L = c.extra["layout"]
    s = np.zeros((1, c.arch.d_model))
    s[0, L["val"][: ids.size]] = ids / c.V
    return SoftPrompt(jnp.asarray(s, c.dtype))


def virtual_tokens(construction: Construction, sequences) -> SoftPrompt:
    """Batched :func:`virtual_token`: ``sequences [B, N]``
    -> SoftPrompt with embeddings ``[B, 1, d_model]``."""
    c = construction
    ids = np.asarray(sequences)
    if ids.ndim != 2 or ids.shape[1] != c.n_out:
        raise ToolkitError(f"sequences: expected shape [batch, N={c.n_out}], got {ids.shape}")
    if ids.min() < 0 or ids.max() >= c.V:
        raise ToolkitError(
            f"sequences: token ids must lie in [0, {c.V}), got ids from {ids.min()} to {ids.max()}"
        )
    L = c.extra["layout"]
    s = np.zeros((ids.shape[0], 1, c.arch.d_model))
    s[:, 0, L["val"]] = ids / c.V
    return SoftPrompt(jnp.asarray(s, c.dtype))


def worst_sequence(V: int, N: int) -> np.ndarray:
    """The input that attains the leakage bound: zeros,
    then V-1 last (the content pulls it down)."""
    seq = np.zeros(N, np.int64)
    seq[-1] = V - 1
    return seq
