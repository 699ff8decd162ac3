"""THEORY.md §3 (a): a prefix cannot change relative attention over the content.

A^pt_ij = A_ij (1 - sum_p A^pt_ip)      for every content key j in C(i)
"""

import sympy as sp

from theory.compare import compare
from theory.registry import Theorem, register_theorem
from theory.symbolic import Derivation, Step

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
        title="Relative attention over the content is unchanged by any prefix (n content, n_p prefix positions)",
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


THEOREM = register_theorem(
    Theorem(
        id="relative_attention",
        statement="A prefix rescales a head's content attention uniformly: A^pt_ij = A_ij (1 - sum_p A^pt_ip).",
        section="§3",
        assumptions=(
            "softmax-normalised attention (the prefix enters the denominator)",
            "content at the same positions with and without the prefix",
            "deeper layers: given the layer's inputs",
        ),
        derivation=derivation,
        check=check,
    )
)


def instance(arch, trial):
    """(label, symbolic result at the JAX numbers, JAX value): layer 0, head 0, last content query, first key."""
    import jax.numpy as jnp

    from theory.context import n_virtual
    from theory.model import mask_matrix
    from theory.compare import layer_pairs

    n_p = n_virtual(trial.context)
    i = n_p + trial.tokens.shape[0] - 1
    layer = layer_pairs(arch, trial)[0][0]
    scores, visible = (
        layer.adapted["attn.hook_attn_scores"][0, i],
        mask_matrix(arch, trial.key_mask)[i],
    )
    e = jnp.where(visible, jnp.exp(scores - jnp.max(jnp.where(visible, scores, -jnp.inf))), 0.0)
    numbers = {e_ij: float(e[n_p]), Z: float(e[n_p:].sum()), P: float(e[:n_p].sum())}
    definitions = {s: x for s, x, _ in derivation().definitions if s not in (Z, P)}
    at = lambda expr: float(
        sp.sympify(expr).xreplace(definitions).xreplace(definitions).xreplace(numbers)
    )
    pattern = layer.adapted["attn.hook_pattern"][0, i]
    return [
        ("A^pt_ij = A_ij (1 - A^pt_i,pre)", at(A_ij * (1 - Apt_pre)), float(pattern[n_p])),
        ("A^pt_i,pre = P_i / (Z_i + P_i)", at(Apt_pre), float(pattern[:n_p].sum())),
    ]
