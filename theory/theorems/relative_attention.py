"""A prefix cannot change relative attention over the content (docs/theory.md §3.1).

A^pt_ij = A_ij (1 - sum_p A^pt_ip)      for every content key j in C(i)
"""

import jax.numpy as jnp
import sympy as sp

from theory.attention import mask_matrix
from theory.compare import compare, layer_pairs
from theory.context import n_virtual
from theory.hooks import act_name
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem

e_ij = sp.Symbol("e_{ij}", positive=True)  # exp(T x_i^T H x_j), one content key
Z = sp.Symbol("Z_i", positive=True)  # content normaliser sum_{r in C(i)} exp(l_ir)
P = sp.Symbol("P_i", positive=True)  # prefix mass sum_p exp(l_{i,p})
A_ij = sp.Symbol("A_{ij}")
Apt_ij = sp.Symbol("A^{pt}_{ij}")
Apt_pre = sp.Symbol("A^{pt}_{i,pre}")
r, p, n, n_p = sp.symbols("r p n n_p", integer=True, positive=True)
l = sp.IndexedBase("l")


def derivation() -> Derivation:
    return Derivation(
        title="Relative attention over the content is unchanged by any prefix "
        "(n content, n_p prefix positions)",
        definitions=(
            (Z, sp.Sum(sp.exp(l[r]), (r, 1, n)), "content normaliser over C(i), any n"),
            (P, sp.Sum(sp.exp(l[n + p]), (p, 1, n_p)), "prefix mass, any n_p"),
            (A_ij, e_ij / Z, "softmax without prefix"),
            (Apt_ij, e_ij / (Z + P), "softmax with the prefix in the denominator"),
            (Apt_pre, P / (Z + P), "total attention on the prefix"),
        ),
        steps=(
            Step(1 - Apt_pre, Z / (Z + P), "the content keeps the share Z/(Z+P)"),
            Step(A_ij * (1 - Apt_pre), (e_ij / Z) * (Z / (Z + P)), "substitute A_ij and step 1"),
            Step((e_ij / Z) * (Z / (Z + P)), e_ij / (Z + P), "Z_i > 0 cancels"),
            Step(
                Apt_ij,
                A_ij * (1 - Apt_pre),
                "conclusion: every content weight scales by the same factor",
            ),
        ),
        notes=(
            "Z_i and P_i are positive symbols standing for sums of any length, so the proof covers "
            "every n and n_p; no step uses the values of the logits, so it holds for every head, "
            "query, temperature and mask.",
        ),
    )


def check(arch, trial):
    return compare(arch, trial).attention_residual.max()


def instance(arch, trial):
    """Layer 0, head 0, the last content query and the first content key: the symbolic
    conclusion at the JAX run's numbers next to the JAX value."""
    n_p = n_virtual(trial.context)
    i = n_p + trial.tokens.shape[0] - 1
    layer = layer_pairs(arch, trial)[0][0]
    scores = layer.adapted[act_name("scores")][0, i]
    visible = mask_matrix(arch, trial.key_mask)[i]
    e = jnp.where(visible, jnp.exp(scores - jnp.max(jnp.where(visible, scores, -jnp.inf))), 0.0)
    numbers = {e_ij: float(e[n_p]), Z: float(e[n_p:].sum()), P: float(e[:n_p].sum())}
    definitions = {s: x for s, x, _ in derivation().definitions if s not in (Z, P)}

    def at(expr):
        return float(sp.sympify(expr).xreplace(definitions).xreplace(definitions).xreplace(numbers))

    pattern = layer.adapted[act_name("pattern")][0, i]
    return [
        ("A^pt_ij = A_ij (1 - A^pt_i,pre)", at(A_ij * (1 - Apt_pre)), float(pattern[n_p])),
        ("A^pt_i,pre = P_i / (Z_i + P_i)", at(Apt_pre), float(pattern[:n_p].sum())),
    ]


MEASURES = """\
Per layer, head, content query i and content key j, given the layer's inputs (docs/theory.md
§3.4): max |A^pt_ij - c_i A_ij| with c_i = 1 - m_i (m_i the prefix mass) for normalised attention
kinds and c_i = 1 for unnormalised ones; A_ij comes from the base block run without any prefix on
the adapted run's content activations (theory.compare)."""

THEOREM = Theorem(
    id="relative_attention",
    statement="A prefix rescales a head's content attention uniformly: "
    "A^pt_ij = A_ij (1 - sum_p A^pt_ip) (factor 1 for unnormalised kinds, the modified form).",
    section="§3.1",
    assumptions=(
        "softmax-normalised attention (the prefix enters the denominator)",
        "content at the same positions with and without the prefix",
        "deeper layers: given the layer's inputs",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    instance=instance,
    controls=(
        Control(
            "rank-1 W_Q update",
            "fine-tuning changes H, so relative attention moves",
            "paper",
            "finetune_rank1_WQ",
        ),
        Control(
            "prefix outside the denominator",
            "a wrong softmax that leaves the prefix keys out of the denominator",
            "broken-denominator",
            "prefix",
        ),
    ),
    coq=CoqProof(
        names=(
            "RelativeAttention.relative_attention",
            "RelativeAttention.relative_attention_ratio",
            "Layer.layer_relative_attention",
            "RelativeAttention.prefix_outside_denominator_refuted",
        ),
        general_in=(
            "every number of content keys n >= 1 (the query's visible keys: any mask), of virtual "
            "positions n_p, any logits (any d, head dimension, temperature, positional scheme); "
            "per head of a layer with any number of heads H and any of the four context methods"
        ),
    ),
)
