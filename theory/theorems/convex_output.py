"""A prefix only biases a head's output towards its values (docs/theory.md §3.2).

t^pt_i = sum_p A^pt_ip W_V s_p + (1 - sum_p A^pt_ip) t_i
"""

import sympy as sp

from theory.compare import compare
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem

Z = sp.Symbol("Z_i", positive=True)  # sum_r exp(l_ir)
P = sp.Symbol("P_i", positive=True)  # sum_p exp(l_ip)
S = sp.Symbol("S_i")  # sum_r exp(l_ir) v_r   (one coordinate of the value space)
Q = sp.Symbol("Q_i")  # sum_p exp(l_ip) u_p, u_p = W_V s_p
t_i = sp.Symbol("t_i")
tpt_i = sp.Symbol("t^{pt}_i")
B_i = sp.Symbol("b_i")  # the bias term sum_p A^pt_ip u_p
M_i = sp.Symbol("m_i")  # prefix mass sum_p A^pt_ip
r, p, n, n_p = sp.symbols("r p n n_p", integer=True, positive=True)
l, v, u = sp.IndexedBase("l"), sp.IndexedBase("v"), sp.IndexedBase("u")


def derivation() -> Derivation:
    return Derivation(
        title=(
            "The prefixed head output is a convex combination "
            "of the prefix values and the unprefixed output"
        ),
        definitions=(
            (Z, sp.Sum(sp.exp(l[r]), (r, 1, n)), "content normaliser"),
            (P, sp.Sum(sp.exp(l[n + p]), (p, 1, n_p)), "prefix normaliser"),
            (
                S,
                sp.Sum(sp.exp(l[r]) * v[r], (r, 1, n)),
                "content numerator (any coordinate of W_V x)",
            ),
            (Q, sp.Sum(sp.exp(l[n + p]) * u[p], (p, 1, n_p)), "prefix numerator, u_p = W_V s_p"),
            (t_i, S / Z, "head output without prefix"),
            (tpt_i, (Q + S) / (Z + P), "head output with prefix"),
            (B_i, Q / (Z + P), "bias: sum_p A^pt_ip u_p, in the cone of the u_p"),
            (M_i, P / (Z + P), "prefix mass"),
        ),
        steps=(
            Step(tpt_i, Q / (Z + P) + S / (Z + P), "split the numerator"),
            Step(S / (Z + P), (Z / (Z + P)) * (S / Z), "multiply and divide by Z_i > 0"),
            Step(Z / (Z + P), 1 - M_i, "content share is one minus the prefix mass"),
            Step(
                tpt_i,
                B_i + (1 - M_i) * t_i,
                "conclusion: convex combination (weights m_i and 1 - m_i)",
            ),
            Step(tpt_i - t_i, B_i - M_i * t_i, "displacement: t^pt - t = m_i (b_i / m_i - t_i)"),
        ),
        notes=(
            "Each step is linear in the values, so checking one coordinate proves it "
            "for every coordinate. b_i / m_i is a convex combination of the u_p, so "
            "the bias lies in their cone; with one prefix position b_i / m_i = W_V s.",
        ),
    )


def check(arch, trial):
    return compare(arch, trial).output_residual.max()


MEASURES = """\
Per layer, head and content query i, given the layer's inputs: max |t^pt_i - (sum_p A^pt_ip v_p +
c_i t_i)| with v_p the virtual positions' values read from the adapted run, c_i = 1 - m_i
(normalised kinds) or 1 (unnormalised), and t_i the base block's output on the adapted run's
content activations (theory.compare)."""

THEOREM = Theorem(
    id="convex_output",
    statement="A prefix moves a head's output along "
    "t^pt = sum_p A^pt_ip v_p + (1 - sum_p A^pt_ip) t (factor 1 for unnormalised kinds).",
    section="§3.2",
    assumptions=(
        "softmax-normalised attention",
        "content at the same positions with and without the prefix",
        "deeper layers: given the layer's inputs",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    controls=(
        Control(
            "rank-1 W_Q update",
            "fine-tuning changes the attention over the content, so the output is no such "
            "combination of the unprefixed output",
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
            "ConvexOutput.convex_output",
            "ConvexOutput.convex_output_weights",
            "ConvexOutput.convex_output_displacement",
        ),
        general_in=("every n >= 1, n_p, value dimension (each coordinate), any logits and values"),
    ),
)
