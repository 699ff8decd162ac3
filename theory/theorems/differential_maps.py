"""Differential attention: what a prefix does to each softmax map (docs/theory.md §5.2).

A differential head's weights are ``A1 - lambda A2`` (theory/zoo/differential.py). A prefix takes
the share ``m_k`` of each map separately, so

    A^pt_{k,ij} = A_{k,ij} (1 - m_k)                              (k = 1, 2: each map keeps
                                                                   relative attention)
    t^pt_i = [b_1 + (1 - m_1) t_1] - lambda [b_2 + (1 - m_2) t_2]  (a difference of two convex
                                                                   combinations)

with ``t_k = sum_j A_{k,ij} v_j`` and ``b_k = sum_p A^pt_{k,ip} u_p``. The difference of the maps
is rescaled by no single factor (the §3 statements fail, as the atlas architecture ``diff``
declares): relative attention over the content changes whenever ``m_1 != m_2``.
"""

import jax.numpy as jnp

from theory.attention import mask_matrix
from theory.compare import compare, layer_pairs
from theory.context import n_virtual
from theory.hooks import act_name
from theory.registry import POSITIONAL_SCHEMES
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import max_abs
from theory.zoo.differential import DIFF_LAMBDA, differential_derivation, differential_maps

Q, K, V, PATTERN, Z_HOOK = (act_name(n) for n in ("q", "k", "v", "pattern", "z"))


def _maps(arch, record, positions, mask):
    """The two softmax maps ``[2, H, N, N]`` recomputed from a layer's recorded q and k."""
    group = arch.n_heads // arch.kv_heads
    bias = 0.0
    scheme = POSITIONAL_SCHEMES[arch.positional]
    if scheme.logit_bias is not None:
        bias = scheme.logit_bias(arch, positions, positions)
    k = jnp.repeat(record[K], group, axis=1)
    return jnp.stack(differential_maps(record[Q], k, arch, bias, mask))


def residuals(arch, trial):
    """[n_layers, 3]: each map's relative attention, the output decomposition, and the recorded
    weights against A1 - lambda A2 (every layer given its inputs)."""
    n_p = n_virtual(trial.context)
    n = trial.tokens.shape[0]
    group = arch.n_heads // arch.kv_heads
    all_positions = jnp.concatenate([jnp.arange(n_p), n_p + jnp.arange(n)])
    full_mask = mask_matrix(arch, trial.key_mask)
    out = []
    for layer in layer_pairs(arch, trial)[0]:
        adapted = _maps(arch, layer.adapted, all_positions, full_mask)[:, :, n_p:]  # [2,H,n,N]
        base = _maps(arch, layer.base, layer.positions, layer.content_mask)  # [2, H, n, n]
        mass = adapted[..., :n_p].sum(-1)  # [2, H, n]
        rescaled = max_abs(adapted[..., n_p:] - (1 - mass)[..., None] * base)
        v_prefix = jnp.repeat(layer.adapted[V][:n_p], group, axis=1)  # [n_p, H, dh]
        v_content = jnp.repeat(layer.base[V], group, axis=1)  # [n, H, dh]
        bias = jnp.einsum("khqp,phd->kqhd", adapted[..., :n_p], v_prefix)
        t = jnp.einsum("khqj,jhd->kqhd", base, v_content)
        each = bias + jnp.swapaxes(1 - mass, 1, 2)[..., None] * t  # [2, n, H, dh]
        predicted = each[0] - DIFF_LAMBDA * each[1]
        output = max_abs(layer.adapted[Z_HOOK][n_p:] - predicted)
        recorded = max_abs(
            layer.adapted[PATTERN][:, n_p:] - (adapted[0] - DIFF_LAMBDA * adapted[1])
        )
        out.append(jnp.stack([rescaled, output, recorded]))
    return jnp.stack(out)


def check(arch, trial):
    return residuals(arch, trial).max()


def one_factor_check(arch, trial):
    """The §3.1 claim for the difference itself (one factor 1 - m), which fails (a control)."""
    return compare(arch, trial).attention_residual.max()


MEASURES = """\
Every layer given its inputs: the two softmax maps recomputed from the recorded queries and keys
(first and second halves of each head); max |A^pt_k,ij - (1 - m_k) A_k,ij| for both maps (m_k the
prefix share of map k), max |t^pt_i - ([b_1 + (1 - m_1) t_1] - lambda [b_2 + (1 - m_2) t_2])| with
the values of the adapted run's virtual positions and of the base run's content, and the recorded
weights against A1 - lambda A2."""

THEOREM = Theorem(
    id="differential_maps",
    statement="Differential attention: each softmax map keeps relative attention, "
    "A^pt_k = (1 - m_k) A_k, and the output is the difference of two convex combinations; the "
    "difference A1 - lambda A2 itself is rescaled by no single factor.",
    section="§5.2",
    assumptions=(
        "two softmax maps over the same keys and values (halves of each head's query and key)",
        "content at the same positions; deeper layers given their inputs",
        "the group norm after the head is not modelled (it acts on each position alone)",
    ),
    derivation=differential_derivation,
    check=check,
    measures=MEASURES,
    requires=("attention", "differential"),
    methods=("prefix", "kv_prefix", "lora_rank1_WK"),
    controls=(
        Control(
            "one factor for the difference",
            "the §3.1 claim A^pt = (1 - m) A for the differential weights: violated, since the "
            "prefix takes different shares from the two maps",
            "diff",
            "kv_prefix",
            check=one_factor_check,
        ),
        Control(
            "rank-1 W_K update",
            "a weight update changes each map's relative attention",
            "diff",
            "lora_rank1_WK",
        ),
    ),
    coq=CoqProof(
        names=(
            "Differential.differential_each_map",
            "Differential.differential_output",
            "Differential.differential_not_relative",
        ),
        general_in=(
            "every n >= 1, n_p, lambda, value dimension (each coordinate) and logits of both maps"
        ),
    ),
)
