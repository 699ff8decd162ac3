"""Two user tokens: any map ``m: [V]^2 -> [V]`` from ONE virtual token, decoded by an explicit MLP.

The virtual token packs the table in base ``B = 2^b >= V``, ``k`` digits per
coordinate (``G = ceil(V/k)`` coordinates per first token)::

    s[x1, g] = sum_{i<k} m(x1, g k + i) B^-(i+1)

``k = V`` is the paper's packing (one coordinate per ``x1``, hidden size O(V),
precision ``B^-V``); smaller ``k`` trades hidden size for precision.  The paper's
companion code decodes the packed number with a Python function; here the
model's own ReLU MLP does it, so the whole map runs through
:func:`theory.model.forward`.

Model (one layer, two heads, ReLU MLP of depth ``2k + 3``, no LayerNorm)::

    residual = [ val (V G) | tok (V) | u1 (V) | pos (3) | out (1) ]
    position 0: virtual token s;  position 1: x1;  position 2: x2 (read its logits)

* head 0: every query finds position 0 and copies ``val``; head 1: every query
  finds position 1 and copies its one-hot ``tok`` into ``u1``;
* MLP layer 1: ``a[x1', g] = ReLU(val[x1', g] + u1[x1'] - 1)`` (keeps row x1) and
  ``ReLU(tok)`` (x2 one-hot); layer 2: ``w_g = ReLU(sum a[., g] + [x2 in group g] - 1)``
  (keeps the coordinate holding digit x2) and the one-hot of ``i = x2 mod k``;
* two layers per digit extract it: ``d = sum_m step(B r - m)`` with the ramp
  ``step = min(ReLU(2y/delta + 3/2), 1) = 1 - ReLU(1 - ReLU(2y/delta + 3/2))`` placed
  between attainable values (``delta = B^-(k-1-i)``), ``r <- B r - d``; digit ``i`` is
  gated by the one-hot and accumulated; ``out = d_{x2}`` (an integer);
* unembedding ``logit_t = 2 t z - t^2`` (argmax = the integer nearest z).

Certificates: :func:`constructions.certificates.two_token_certificate`; the exact
mode (:mod:`constructions.exact`) evaluates the same weights in rational/interval
arithmetic where float64 cannot hold ``k log2 B`` bits.
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax.numpy as jnp
import numpy as np

from constructions.certificates import (
    MANTISSA,
    digit_base,
    dtype_name,
    log_up,
    max_digits_float,
    two_token_bounds,
    two_token_certificate,
)
from constructions.common import (
    Construction,
    Layout,
    check_size,
    check_temperature,
    to_jax,
    zero_params,
)
from theory.architecture import Architecture, validate_architecture
from theory.context import SoftPrompt
from theory.errors import ToolkitError


def two_token_model(
    V: int, k: int | None = None, T: float | None = None, dtype=jnp.float64, exact: bool = False
) -> Construction:
    """The two-token construction.

    ``k`` digits per coordinate (default: ``V`` if the dtype allows it, else the most it
    allows); ``exact=True`` certifies for exact-arithmetic evaluation
    (:func:`constructions.exact.exact_two_token_table`) and allows any ``k``.
    Raises ToolkitError when ``k`` is beyond what the dtype can certify.
    """
    V = check_size("V (vocabulary size)", V, 2)
    name = dtype_name(dtype)
    B, b = digit_base(V)
    k_float = max_digits_float(V, name)
    if k is None:
        k = V if exact else min(V, k_float)
        if k < 1:
            raise ToolkitError(
                f"two-token construction with V={V} cannot hold one base-{B} "
                f"digit exactly in {name}; use exact=True (exact mode) or float64"
            )
    k = check_size("k (digits per coordinate)", k, 1, V)
    if not exact and k > k_float:
        raise ToolkitError(
            f"two-token construction: V={V} with k={k} base-{B} digits per coordinate "
            f"needs {(k + 1) * b + 3} mantissa bits, {name} has {MANTISSA[name]} "
            f"(largest certifiable: k={k_float}); remedies: exact mode (exact=True / "
            f"--exact), fewer digits per coordinate (k <= {k_float}, hidden size "
            f"grows){', or float64' if name == 'float32' else ''}"
        )
    if T is None:
        if exact:
            T = math.ceil(log_up(two_token_bounds(V, k))) + 1.0
        else:
            T = math.ceil(two_token_certificate(V, k, 1.0, name).T_min) + 1.0
    T = check_temperature(T)
    G = -(-V // k)
    L = Layout(val=V * G, tok=V, u1=V, pos=3, out=1)
    width = max(V * G + V, G + k, (V - 1) + k + 3) + 1  # + a constant unit 'one'
    d_head = max(V * G, V)
    arch = validate_architecture(
        Architecture(
            name=f"construction-two-token-V{V}-k{k}",
            n_layers=1,
            n_heads=2,
            d_model=L.d,
            d_head=d_head,
            d_mlp=width,
            d_vocab=V,
            n_ctx=3,
            positional="learned",
            norm="none",
            causal=True,
            mlp_act="relu",
            mlp_depth=2 * k + 3,
            temperature=T,
            final_norm=False,
            description=(
                "two-token construction: one virtual token "
                "encodes any map [V]^2 -> [V], decoded by the MLP"
            ),
        )
    )
    P = zero_params(arch)
    P["embed"]["W_E"][np.arange(V), L["tok"]] = 1.0
    P["embed"]["W_pos"][np.arange(3), L["pos"]] = 1.0
    attn, mlp = P["blocks"][0]["attn"], P["blocks"][0]["mlp"]
    scale = math.sqrt(d_head)
    attn["W_Q"][:, L["pos"], 0] = scale
    attn["W_K"][0, L["pos"][0], 0] = 1.0
    attn["W_K"][1, L["pos"][1], 0] = 1.0
    attn["W_V"][0, L["val"], np.arange(V * G)] = 1.0
    attn["W_O"][0, np.arange(V * G), L["val"]] = 1.0
    attn["W_V"][1, L["tok"], np.arange(V)] = 1.0
    attn["W_O"][1, np.arange(V), L["u1"]] = 1.0
    _digit_mlp(mlp, L, V, k, G, B)
    P["unembed"]["W_U"][L["out"][0], :] = 2.0 * np.arange(V)
    P["unembed"]["b_U"][:] = -(np.arange(V, dtype=np.float64) ** 2)
    cert = two_token_certificate(V, k, T, name, exact_mode=exact)
    return Construction(
        "two_token",
        arch,
        to_jax(P, dtype),
        V,
        T,
        n_prompt=2,
        n_out=1,
        n_virtual=1,
        extra={"layout": L, "k": k, "G": G, "B": B, "exact": exact, "numpy_params": P},
        certificate=cert,
    )


def _digit_mlp(mlp: dict, L: Layout, V: int, k: int, G: int, B: int) -> None:
    """Write the digit-extracting ReLU MLP (see the
    module docstring) into ``mlp`` (numpy, in place).

    Hidden layers: 1 (row select), 2 (group select), then for each digit i a pair
    A_i (``u_m = ReLU(g_m)``, ``g_m = (2/delta_i)(B r_i - m) + 3/2``) and B_i
    (``v_m = ReLU(1 - u_m)``), so that ``step_m = min(u_m, 1) = 1 - v_m`` and the digit
    ``d_i = M - sum_m v_m`` is a sum of BOUNDED units (a sum of the unbounded ``u_m``
    would need far more mantissa bits); finally a gate layer F.  Depth 2k + 3.
    """
    W_in, b_in, Wh, bh, W_out = (
        mlp["W_in"],
        mlp["b_in"],
        mlp["W_hidden"],
        mlp["b_hidden"],
        mlp["W_out"],
    )
    one = (
        W_in.shape[1] - 1
    )  # a unit equal to 1 in every layer: small offsets ride on it, so that no
    b_in[one] = 1.0  # single weight mixes B^(k-1) and 1/2 (every weight stays exact in float64)
    for i in range(len(Wh)):
        Wh[i][one, one] = 1.0
    # layer 1: a[x1, g] at x1*G + g;  p2[j] at V*G + j
    for x1 in range(V):
        for g in range(G):
            u = x1 * G + g
            W_in[L["val"][u], u] = 1.0
            W_in[L["u1"][x1], u] = 1.0
            b_in[u] = -1.0
    p2 = V * G + np.arange(V)
    W_in[L["tok"], p2] = 1.0
    # layer 2: w[g] at g;  c[i] at G + i
    for g in range(G):
        Wh[0][np.arange(V) * G + g, g] = 1.0
        for j in range(g * k, min(V, (g + 1) * k)):
            Wh[0][p2[j], g] = 1.0
        bh[0][g] = -1.0
    for j in range(V):
        Wh[0][p2[j], G + j % k] = 1.0
    M = V - 1  # steps m = 1..V-1
    um = np.arange(M)  # u_m (layers A) / v_m (layers B)
    rr, cc, gd, acc = M, M + 1 + np.arange(k), M + 1 + k, M + 2 + k
    ms = np.arange(1, V, dtype=np.float64)
    Bf = float(B)

    def gate(W, bias, src_v, src_cc):  # ReLU(d + B c - B), d = M - sum v
        W[src_v, gd] = -1.0
        W[src_cc, gd] = Bf
        bias[gd] = float(M) - Bf

    for i in range(k):
        A, bA, Bm, bB = Wh[1 + 2 * i], bh[1 + 2 * i], Wh[2 + 2 * i], bh[2 + 2 * i]
        inv = 2.0 * Bf ** (k - 1 - i)  # 2 / delta_i
        if i == 0:  # source: layer 2; r_0 = sum_g w[g]
            r_terms, r_const, c_src = [(g, 1.0) for g in range(G)], 0.0, G + np.arange(k)
        else:  # source: B_{i-1}; r_i = B rr + sum v - M
            r_terms, r_const, c_src = [(rr, Bf)] + [(v, 1.0) for v in um], -float(M), cc
        for src, coef in r_terms:
            A[src, um] += inv * Bf * coef
            A[src, rr] += coef
        bA[um] = -inv * (ms - Bf * r_const)
        A[one, um] = 1.5
        bA[rr] = r_const
        A[c_src, cc] = 1.0
        if i > 0:
            gate(A, bA, um, cc[i - 1])
            A[acc, acc] = 1.0
        Bm[um, um] = -1.0  # v_m = ReLU(1 - u_m)
        bB[um] = 1.0
        Bm[rr, rr] = 1.0
        Bm[cc, cc] = 1.0
        Bm[acc, acc] = 1.0  # acc <- acc + gated digit
        Bm[gd, acc] = 1.0
    F, bF = Wh[2 * k + 1], bh[2 * k + 1]
    gate(F, bF, um, cc[k - 1])
    F[acc, acc] = 1.0
    W_out[gd, L["out"][0]] = 1.0
    W_out[acc, L["out"][0]] = 1.0


def check_pair_table(V: int, table) -> np.ndarray:
    arr = np.asarray(table)
    if arr.shape != (V, V) or not np.issubdtype(arr.dtype, np.integer):
        raise ToolkitError(
            f"two-token map: expected integer token ids of shape ({V}, {V}) (m[x1, x2]), "
            f"got shape {arr.shape} and dtype {arr.dtype}"
        )
    if arr.min() < 0 or arr.max() >= V:
        raise ToolkitError(
            f"two-token map: values must be token ids in [0, {V}), got {arr.min()}..{arr.max()}"
        )
    return arr


def packed_values(construction: Construction, table) -> list[list[Fraction]]:
    """The exact packed coordinates ``s[x1, g]`` (Fractions), row-major over (x1, g)."""
    c = construction
    V, k, G, B = c.V, c.extra["k"], c.extra["G"], c.extra["B"]
    arr = check_pair_table(V, table)
    vals = []
    for x1 in range(V):
        for g in range(G):
            vals.append(
                sum(
                    (
                        Fraction(int(arr[x1, g * k + i]), B ** (i + 1))
                        for i in range(k)
                        if g * k + i < V
                    ),
                    Fraction(0),
                )
            )
    return vals


def pair_token(construction: Construction, table) -> SoftPrompt:
    """The virtual token (float) for a map ``table [V, V]``; exact in the dtype when certified."""
    c = construction
    L = c.extra["layout"]
    s = np.zeros((1, c.arch.d_model))
    s[0, L["val"]] = [float(v) for v in packed_values(c, table)]
    return SoftPrompt(jnp.asarray(s, c.dtype))


def pair_token_exact(construction: Construction, table) -> list[list[Fraction]]:
    """The virtual token as exact Fractions ``[1][d_model]`` (for :mod:`constructions.exact`)."""
    c = construction
    L = c.extra["layout"]
    row = [Fraction(0)] * c.arch.d_model
    for idx, v in zip(L["val"], packed_values(c, table), strict=True):
        row[int(idx)] = v
    return [row]


def all_pairs(V: int) -> np.ndarray:
    """Every input pair ``[V*V, 2]`` (x1 major)."""
    x1, x2 = np.meshgrid(np.arange(V), np.arange(V), indexing="ij")
    return np.stack([x1.ravel(), x2.ravel()], axis=1)


def exact_two_token_table(construction: Construction, table, pairs=None, prec: int | None = None):
    """Exact-mode evaluation: for each input pair, the
    token the REAL-arithmetic model provably emits.

    Returns an int array ``[len(pairs)]`` with -1 where the interval evaluation cannot
    separate the top logit (never for a certified construction).  ``pairs`` default: all V^2.
    """
    from constructions.exact import ExactModel, certain_argmax

    c = construction
    pairs = all_pairs(c.V) if pairs is None else np.asarray(pairs)
    prec = prec or (2 * c.extra["k"] * int(np.log2(c.extra["B"])) + 128)
    model = ExactModel(c.extra["numpy_params"], c.arch, prec=prec)
    virtual = pair_token_exact(c, table)
    out = np.full(len(pairs), -1, np.int64)
    for idx, (x1, x2) in enumerate(pairs):
        lo, hi = model.logits([int(x1), int(x2)], virtual, only=[1])
        best = certain_argmax(lo[0], hi[0])
        out[idx] = -1 if best is None else best
    return out
