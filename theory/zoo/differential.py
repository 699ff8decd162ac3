"""Differential attention (DIFF Transformer, Ye et al., 2024) and its atlas architecture
(docs/theory.md §5.2).

Each head splits its query and key into halves and computes two softmax maps over the same keys,
``A1 = softmax(q1 . k1)`` and ``A2 = softmax(q2 . k2)``; its weights are their difference
``A1 - lambda A2`` (``lambda = 0.8``, DIFF Transformer's value deep in the network; the group
norm and the ``1 - lambda_init`` scale after the head are not modelled: they act on each
position's output alone). A prefix takes a share from each map separately, ``m1`` and ``m2``, so
the difference is not rescaled by one factor: §3.1-§3.5 fail, and what holds is the statement
of ``differential_maps`` (each map keeps relative attention, the output is the difference of
two convex combinations).
"""

from __future__ import annotations

import sympy as sp

from theory.architecture import Architecture, register_architecture
from theory.attention import (
    AttentionKind,
    masked_exp,
    register_attention,
    safe_divide,
    scaled_logits,
)
from theory.errors import ToolkitError
from theory.symbolic import Derivation, Step
from theory.zoo.modern import ATLAS_METHODS, SMALL

DIFF_LAMBDA = 0.8


def differential_maps(q, k, arch, bias, mask):
    """The two softmax maps ``(A1, A2)`` ``[H, Nq, Nk]``, from the first and second halves of the
    queries and keys (each half a softmax logit of its own, scaled by its own width)."""
    half = q.shape[-1] // 2
    if q.shape[-1] % 4:
        raise ToolkitError(
            f"differential attention splits each head into two halves of whole RoPE pairs: "
            f"d_head must be a multiple of 4, got {q.shape[-1]} (architecture {arch.name!r})"
        )
    maps = []
    for part in (slice(0, half), slice(half, None)):
        e, _ = masked_exp(scaled_logits(q[..., part], k[..., part], arch, bias), mask)
        maps.append(safe_divide(e, e.sum(-1, keepdims=True)))
    return maps[0], maps[1]


def _differential_weights(q, k, arch, bias, mask, virtual):
    """``A1 - lambda A2``; the recorded scores are the first map's logits."""
    first, second = differential_maps(q, k, arch, bias, mask)
    half = q.shape[-1] // 2
    scores = scaled_logits(q[..., :half], k[..., :half], arch, bias)
    return scores, first - DIFF_LAMBDA * second


def differential_derivation() -> Derivation:
    """Each map keeps relative attention; the difference is rescaled by no single factor."""
    e1, e2, Z1, Z2, P1, P2 = sp.symbols("e_{1ij} e_{2ij} Z_1 Z_2 P_1 P_2", positive=True)
    lam = sp.Symbol("lambda", positive=True)
    S1, S2, Q1, Q2 = sp.symbols("S_1 S_2 Q_1 Q_2")
    A1, A2, A1pt, A2pt = sp.symbols("A_{1ij} A_{2ij} A^{pt}_{1ij} A^{pt}_{2ij}")
    m1, m2, m = sp.symbols("m_1 m_2 m")
    A, Apt, t1, t2, tpt, b1, b2 = sp.symbols("A_{ij} A^{pt}_{ij} t_1 t_2 t^{pt} b_1 b_2")
    return Derivation(
        title="Differential attention: each softmax map keeps relative attention; their difference "
        "is not rescaled by one factor",
        definitions=(
            (A1, e1 / Z1, "first map without prefix: Z_1 = sum_r exp(l_1ir), any n"),
            (A2, e2 / Z2, "second map without prefix"),
            (A1pt, e1 / (Z1 + P1), "first map with the prefix: P_1 = sum_p exp(l_1ip), any n_p"),
            (A2pt, e2 / (Z2 + P2), "second map with the prefix"),
            (m1, P1 / (Z1 + P1), "prefix share of the first map"),
            (m2, P2 / (Z2 + P2), "prefix share of the second map"),
            (A, A1 - lam * A2, "differential weight without prefix"),
            (Apt, A1pt - lam * A2pt, "differential weight with the prefix"),
            (m, m1 - lam * m2, "the prefix's differential mass"),
            (t1, S1 / Z1, "first map's output, S_1 = sum_r exp(l_1ir) v_r (one coordinate)"),
            (t2, S2 / Z2, "second map's output"),
            (b1, Q1 / (Z1 + P1), "first map's bias, Q_1 = sum_p exp(l_1ip) u_p"),
            (b2, Q2 / (Z2 + P2), "second map's bias"),
            (tpt, (Q1 + S1) / (Z1 + P1) - lam * (Q2 + S2) / (Z2 + P2), "output with prefix"),
        ),
        steps=(
            Step(A1pt, A1 * (1 - m1), "the first map keeps relative attention (factor 1 - m_1)"),
            Step(A2pt, A2 * (1 - m2), "the second map too, with its own factor 1 - m_2"),
            Step(
                tpt,
                (b1 + (1 - m1) * t1) - lam * (b2 + (1 - m2) * t2),
                "the output is the difference of two convex combinations (weights m_k, 1 - m_k)",
            ),
            Step(
                Apt - (1 - m) * A,
                lam * (A2 * (m2 - m1 + lam * m2) - m2 * A1),
                "the §3.1 claim A^pt = (1 - m) A with the differential mass m leaves this "
                "remainder, not 0 in general: no single factor rescales the difference",
            ),
            Step(
                Apt - (1 - m1) * A,
                lam * A2 * (m2 - m1),
                "the best single factor, 1 - m_1, fits only when m_1 = m_2: the prefix reweights "
                "the two maps against each other, which changes relative attention",
            ),
        ),
        notes=(
            "Z_k and P_k stand for sums of any length, so the steps hold for every n and n_p. The "
            "ratio of two content weights, (A1_ij - lam A2_ij) / (A1_ir - lam A2_ir), is kept by "
            "the prefix only when 1 - m_1 = 1 - m_2: §3.1 and everything built on it fail, because "
            "the prefix takes different shares from the two softmax maps.",
        ),
    )


register_attention(
    AttentionKind(
        "differential",
        normalised=True,
        weights=_differential_weights,
        derivation=differential_derivation,
        description="differential attention: softmax(q1.k1) - 0.8 softmax(q2.k2) over head halves "
        "(Ye et al., 2024)",
        features=("differential", "signed_weights"),
    )
)

TWO_SHARES = (
    "two softmax maps lose different prefix shares m_1, m_2, so A^pt = (1-m_1) A1 - lam (1-m_2) A2 "
    "is no single rescaling of A1 - lam A2 (derivation: docs/theory.md §5.2)"
)
FIRST_MAP = (
    "the recorded scores are the first map's logits over half of each head, while the formula "
    "uses the whole head's q.k (the first-order change holds per map, docs/theory.md §5.2)"
)

register_architecture(
    Architecture(
        name="diff",
        n_layers=2,
        description="differential attention (DIFF Transformer): two softmax maps per head, "
        "lambda 0.8, RoPE, pre-LN",
        attention="differential",
        positional="rope",
        norm="pre",
        default_run=False,
        **{**SMALL, "d_head": 4, "default_methods": ATLAS_METHODS},
        expectations=tuple(
            (t, "fails", TWO_SHARES)
            for t in (
                "relative_attention",
                "convex_output",
                "single_prefix",
                "bias_span",
                "pre_ln",
                "position_shift",
            )
        )
        + (("deeper_first_order", "fails", FIRST_MAP),),
    )
)
