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
from typing import Callable, Optional

import jax
import jax.numpy as jnp


@dataclass(frozen=True)
class AttentionKind:
    """``weights(q, k, arch, bias, mask, virtual) -> (scores, pattern)``.

    ``derivation`` (optional): ``() -> theory.symbolic.Derivation`` of how a
    prefix acts on this kind when that differs from plain softmax (THEORY.md §3);
    the atlas renders it and the tests check every step.
    """

    name: str
    normalised: bool
    weights: Callable  # (q, k, arch, bias, mask, virtual) -> (scores, pattern)
    description: str
    derivation: Optional[Callable] = None


ATTENTION_KINDS: dict[str, AttentionKind] = {}


def register_attention(kind: AttentionKind) -> AttentionKind:
    """Register an attention kind under ``kind.name`` (re-registering the same kind is a no-op)."""
    from theory.errors import ToolkitError

    if not callable(kind.weights):
        raise ToolkitError(
            f"attention kind {kind.name!r}: weights must be callable, got {kind.weights!r}"
        )
    if kind.name in ATTENTION_KINDS and ATTENTION_KINDS[kind.name] != kind:
        raise ToolkitError(f"an attention kind named {kind.name!r} is already registered")
    ATTENTION_KINDS[kind.name] = kind
    return kind


def scaled_logits(q, k, arch, bias):
    """``T q.k / sqrt(d_head) + bias``, shape ``[n_heads, Nq, Nk]``."""
    # sqrt(d_head) in q's dtype: jnp.sqrt of a Python int is float64 under x64
    logits = jnp.einsum("qhd,khd->hqk", q, k) * (
        arch.temperature / jnp.sqrt(jnp.asarray(q.shape[-1], q.dtype))
    )
    return logits + bias


def masked_exp(logits, mask):
    """``exp(l - max_visible l)`` on visible keys, 0 elsewhere (row max taken over visible keys)."""
    neg = jnp.finfo(logits.dtype).min
    shifted = jnp.where(mask[None], logits, neg)
    row_max = jax.lax.stop_gradient(jnp.max(shifted, axis=-1, keepdims=True))
    zero = jnp.zeros((), logits.dtype)  # a typed 0 (a Python 0.0 is a float64 operand under x64)
    return jnp.where(mask[None], jnp.exp(shifted - row_max), zero), row_max


def safe_divide(num, den):
    """num / den, with 0 where den == 0 (a query that sees no key)."""
    ok = den > 0
    zero, one = jnp.zeros((), num.dtype), jnp.ones((), den.dtype)
    return jnp.where(ok, num / jnp.where(ok, den, one), zero)


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
        description="negative control: softmax with the prefix left out of the denominator (a wrong implementation)",
    )
)


# --------------------------------------------------------------------------- atlas kinds
# Each kind below changes how a row of weights is formed; its derivation says what a
# prefix does to it (checked by sympy), and ``verify`` checks it numerically.


def _softmax_one_weights(q, k, arch, bias, mask, virtual):
    """Softmax with an always-present zero logit: ``A_ij = exp(l_ij) / (1 + sum_r exp(l_ir))``."""
    logits = scaled_logits(q, k, arch, bias)
    neg = jnp.finfo(logits.dtype).min
    shifted = jnp.where(mask[None], logits, neg)
    row_max = jax.lax.stop_gradient(jnp.maximum(jnp.max(shifted, axis=-1, keepdims=True), 0.0))
    e = jnp.where(mask[None], jnp.exp(shifted - row_max), 0.0)
    return logits, e / (jnp.exp(-row_max) + e.sum(-1, keepdims=True))


def elu_feature_map(x):
    """Katharopoulos et al. (2020) kernel feature map ``phi(x) = elu(x) + 1 > 0``."""
    return jax.nn.elu(x) + 1.0


def _linear_weights(q, k, arch, bias, mask, virtual):
    """Normalised linear attention: ``A_ij = phi(q_i).phi(k_j) / sum_r phi(q_i).phi(k_r)``.

    The temperature scales the queries; a positional logit bias (ALiBi) multiplies
    the kernel by ``exp(bias)`` so that weights stay positive.
    """
    kernel = jnp.einsum("qhd,khd->hqk", elu_feature_map(arch.temperature * q), elu_feature_map(k))
    kernel = jnp.where(mask[None], kernel * jnp.exp(bias), 0.0)
    return kernel, safe_divide(kernel, kernel.sum(-1, keepdims=True))


def sigmoid_bias(arch) -> float:
    """Ramapuram et al. (2024) bias ``b = -log(n_ctx)``: a constant, not the current length."""
    import math

    return -math.log(arch.n_ctx)


def _sigmoid_weights(q, k, arch, bias, mask, virtual):
    """Sigmoid attention: ``A_ij = sigmoid(l_ij + b)`` on visible keys, each weight on its own."""
    logits = scaled_logits(q, k, arch, bias) + sigmoid_bias(arch)
    return logits, jnp.where(mask[None], jax.nn.sigmoid(logits), 0.0)


def _ssmax_weights(q, k, arch, bias, mask, virtual):
    """Scalable-softmax (Nakanishi, 2025): softmax of ``log(N_i) l_ij``, N_i = number of visible keys."""
    logits = scaled_logits(q, k, arch, bias)
    n_visible = mask.sum(-1).astype(logits.dtype)  # [Nq]
    scaled = logits * jnp.log(jnp.maximum(n_visible, 1.0))[None, :, None]
    e, _ = masked_exp(scaled, mask)
    return scaled, safe_divide(e, e.sum(-1, keepdims=True))


def _softmax_one_derivation():
    import sympy as sp
    from theory.symbolic import Derivation, Step

    e, Z, P = sp.symbols("e_{ij} Z_i P_i", positive=True)
    S, Q = sp.symbols("S_i Q_i")
    A, Apt, m, t, tpt, b = sp.symbols("A_{ij} A^{pt}_{ij} m_i t_i t^{pt}_i b_i")
    return Derivation(
        title="Off-by-one softmax: the zero logit is one more content term, so both §3 identities hold",
        definitions=(
            (A, e / (1 + Z), "weight without prefix (the 1 is exp(0) of the zero logit)"),
            (Apt, e / (1 + Z + P), "weight with the prefix mass P_i in the denominator"),
            (m, P / (1 + Z + P), "prefix mass"),
            (t, S / (1 + Z), "output without prefix, S_i = sum_r exp(l_ir) v_r"),
            (tpt, (Q + S) / (1 + Z + P), "output with prefix, Q_i = sum_p exp(l_ip) u_p"),
            (b, Q / (1 + Z + P), "bias towards the prefix values"),
        ),
        steps=(
            Step(
                1 - m, (1 + Z) / (1 + Z + P), "content and zero logit keep the share (1+Z)/(1+Z+P)"
            ),
            Step(
                Apt,
                A * (1 - m),
                "relative attention: the same factor 1 - m_i for every content key",
            ),
            Step(tpt, b + (1 - m) * t, "output: bias plus (1 - m_i) times the unprefixed output"),
        ),
        notes=(
            "The rows do not sum to 1 (the sink keeps exp(0)/(1+Z+P)), but the prefix mass m_i is still "
            "exactly the share the content loses, so the core check (c_i = 1 - m_i) applies unchanged.",
        ),
    )


def _linear_derivation():
    import sympy as sp
    from theory.symbolic import Derivation, Step

    kappa, Z, P = sp.symbols("kappa_{ij} Z_i P_i", positive=True)
    S, Q = sp.symbols("S_i Q_i")
    A, Apt, m, t, tpt, b = sp.symbols("A_{ij} A^{pt}_{ij} m_i t_i t^{pt}_i b_i")
    return Derivation(
        title="Normalised linear attention: kernel values play the role of exp(l), so both §3 identities hold",
        definitions=(
            (A, kappa / Z, "kappa_ij = phi(q_i).phi(k_j) > 0, Z_i = sum_r kappa_ir"),
            (Apt, kappa / (Z + P), "P_i = sum_p phi(q_i).phi(k_p) > 0 (prefix keys)"),
            (m, P / (Z + P), "prefix mass"),
            (t, S / Z, "S_i = sum_r kappa_ir v_r"),
            (tpt, (Q + S) / (Z + P), "Q_i = sum_p kappa_ip u_p"),
            (b, Q / (Z + P), "bias towards the prefix values"),
        ),
        steps=(
            Step(Apt, A * (1 - m), "relative attention: every content weight scales by 1 - m_i"),
            Step(tpt, b + (1 - m) * t, "output: convex combination of the prefix values and t_i"),
        ),
        notes=(
            "Only positivity of the kernel and the shared denominator are used; any positive feature "
            "map gives the same result.",
        ),
    )


def _sigmoid_derivation():
    import sympy as sp
    from theory.symbolic import Derivation, Step

    r, p, n, n_p = sp.symbols("r p n n_p", integer=True, positive=True)
    l, v, u = sp.IndexedBase("l"), sp.IndexedBase("v"), sp.IndexedBase("u")
    lij, bias = sp.symbols("l_{ij} b", real=True)
    A, Apt, t, tpt, B, m = sp.symbols("A_{ij} A^{pt}_{ij} t_i t^{pt}_i b_i m_i")
    sigma = lambda x: 1 / (1 + sp.exp(-x))  # noqa: E731
    return Derivation(
        title="Sigmoid attention (modified form): content weights are untouched and the prefix adds a bias",
        definitions=(
            (A, sigma(lij + bias), "weight without prefix: sigmoid of its own logit only"),
            (Apt, sigma(lij + bias), "weight with prefix: the prefix keys enter no denominator"),
            (t, sp.Sum(sigma(l[r] + bias) * v[r], (r, 1, n)), "output without prefix"),
            (B, sp.Sum(sigma(l[n + p] + bias) * u[p], (p, 1, n_p)), "bias: sum_p A_ip u_p"),
            (tpt, B + t, "output with prefix: the sum splits into prefix and content keys"),
            (m, sp.Sum(sigma(l[n + p] + bias), (p, 1, n_p)), "prefix mass (between 0 and n_p)"),
        ),
        steps=(
            Step(Apt, 1 * A, "relative attention holds with factor c_i = 1 (not 1 - m_i)"),
            Step(tpt - t, B, "output: t^pt = b_i + t_i, an additive bias in the cone of the u_p"),
        ),
        notes=(
            "Modified form of both §3 identities: c_i = 1, so the core check (theory/compare.py uses "
            "c_i = 1 for kinds with normalised=False) tests exactly this. The bias weights sum to m_i, "
            "which is NOT capped at 1: with n_p prefix positions the bias can grow to n_p times a value "
            "vector, unlike softmax, where it is a convex combination.",
        ),
    )


def _ssmax_derivation():
    import sympy as sp
    from theory.symbolic import Derivation, Step

    N, n_p = sp.symbols("N_i n_p", positive=True)
    lj, lk = sp.symbols("l_{ij} l_{ik}", real=True)
    ratio, ratio_pt = sp.symbols("rho_{ijk} rho^{pt}_{ijk}")
    return Derivation(
        title="Scalable-softmax (log N scaling): a prefix changes the content's temperature, so §3 fails",
        definitions=(
            (
                ratio,
                sp.exp(sp.log(N) * (lj - lk)),
                "A_ij / A_ik without prefix (N_i visible content keys)",
            ),
            (
                ratio_pt,
                sp.exp(sp.log(N + n_p) * (lj - lk)),
                "A^pt_ij / A^pt_ik: the prefix adds n_p keys",
            ),
        ),
        steps=(
            Step(
                ratio_pt / ratio,
                ((N + n_p) / N) ** (lj - lk),
                "ratios change by ((N+n_p)/N)^(l_ij - l_ik)",
            ),
            Step((N + n_p) / N - 1, 0, "the base exceeds 1 for every n_p > 0", relation=">"),
        ),
        notes=(
            "Relative attention over the content is preserved only if the ratio is 1, i.e. l_ij = l_ik: a "
            "prefix sharpens the content attention, which plain softmax cannot do. Expected verdict: fails "
            "(the violation is the prefix's temperature change, not a numerical issue).",
        ),
    )


register_attention(
    AttentionKind(
        "softmax_one",
        normalised=True,
        weights=_softmax_one_weights,
        derivation=_softmax_one_derivation,
        description="off-by-one softmax / attention sink: an always-present zero logit in every denominator",
    )
)
register_attention(
    AttentionKind(
        "linear",
        normalised=True,
        weights=_linear_weights,
        derivation=_linear_derivation,
        description="normalised linear attention with the elu+1 kernel feature map (Katharopoulos et al., 2020)",
    )
)
register_attention(
    AttentionKind(
        "sigmoid",
        normalised=False,
        weights=_sigmoid_weights,
        derivation=_sigmoid_derivation,
        description="sigmoid attention sigmoid(l_ij - log n_ctx), elementwise, unnormalised (Ramapuram et al., 2024)",
    )
)
register_attention(
    AttentionKind(
        "ssmax",
        normalised=True,
        weights=_ssmax_weights,
        derivation=_ssmax_derivation,
        description="scalable-softmax: logits scaled by log(number of visible keys) (Nakanishi, 2025)",
    )
)
