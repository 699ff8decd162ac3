"""Many prefix positions: the bias lies in a fixed cone of dimension <= n_p per head
(docs/theory.md §3.4).

With ``n_p`` prefix positions the head output is ``t^pt_i = b_i + (1 - m_i) t_i`` with the bias
``b_i = sum_p A^pt_ip u_p`` (``u_p = W_V s_p``, or the free value ``v_p`` of a KV-prefix).  The
weights ``A^pt_ip`` are >= 0, so ``b_i`` lies in the cone spanned by ``u_1..u_np``: across all
queries and all inputs the biases of one head span at most ``n_p`` dimensions, and after ``W_O``
the biases of ``H`` heads span at most ``H n_p``.

"""

import jax
import jax.numpy as jnp
import sympy as sp

from theory.compare import layer_pairs
from theory.context import n_virtual
from theory.hooks import act_name
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import core_architecture, relative_singular_tail

PATTERN, V, Z_HOOK = act_name("pattern"), act_name("v"), act_name("z")

N_INPUTS = 4  # content sequences per trial whose biases are stacked

# symbols: two prefix positions written out, the general n_p by the positive sums Z_i, P_i
e1, e2 = sp.symbols("e_{i1} e_{i2}", positive=True)  # exp(l_ip) of two prefix positions
Z = sp.Symbol("Z_i", positive=True)  # content normaliser
P = sp.Symbol("P_i", positive=True)  # prefix normaliser sum_p e_ip
u1, u2 = sp.symbols("u_1 u_2")  # one coordinate of W_V s_1, W_V s_2
a1, a2 = sp.Symbol("A^{pt}_{i1}"), sp.Symbol("A^{pt}_{i2}")
b_i, m_i = sp.Symbol("b_i"), sp.Symbol("m_i")
c1 = sp.Symbol("c_i")


def derivation() -> Derivation:
    return Derivation(
        title="Many prefix positions: the bias is a non-negative combination of the prefix values",
        definitions=(
            (a1, e1 / (Z + P), "weight of prefix position 1 (softmax over prefix and content)"),
            (a2, e2 / (Z + P), "weight of prefix position 2"),
            (b_i, a1 * u1 + a2 * u2, "the bias sum_p A^pt_ip u_p (two positions written out)"),
            (m_i, P / (Z + P), "prefix mass"),
            (
                c1,
                b_i / m_i,
                "the bias divided by the prefix mass, the point the query is pulled to",
            ),
        ),
        steps=(
            Step(a1, 0, "every coefficient of the bias is positive (cone, not just span)", ">"),
            Step(a2, 0, "same for position 2", ">"),
            Step(m_i, 1, "the prefix mass is a proper share", "<"),
            Step(
                c1,
                (e1 * u1 + e2 * u2) / P,
                "b_i / m_i = sum_p (e_ip / P_i) u_p: "
                "weights e_ip / P_i, independent of the content normaliser Z_i",
            ),
            Step(
                b_i,
                a1 * u1 + a2 * u2,
                "b_i is linear in u_1, u_2 with the weights above: it lies in span{u_p}, "
                "so over all queries and inputs the biases of a head span <= n_p dimensions",
            ),
        ),
        notes=(
            "Two prefix positions are written out; for n_p positions every step is the same "
            "with P_i = sum_p e_ip (a positive symbol). After W_O the head biases b_i^h "
            "W_O^h of H heads lie in the sum of H subspaces of dimension <= n_p: at most H "
            "n_p dimensions. The bound holds when the u_p are the same for every input: "
            "prefix and KV-prefix always; hard and soft prompts at layer 0 and, in causal "
            "models, at every layer (the virtual positions come first and never see the "
            "content). In a bidirectional encoder a prompt's deeper states depend on the "
            "content, so the span over many inputs can exceed n_p (per input it cannot).",
        ),
    )


def _biases(arch, trial):
    """Per layer: measured biases [n, H, d_head], prefix values [n_p, H, d_head], and W_O."""
    n_p = n_virtual(trial.context)
    group = arch.n_heads // arch.kv_heads
    out = []
    for layer, _block in zip(layer_pairs(arch, trial)[0], trial.adapted["blocks"], strict=False):
        adapted, base = layer.adapted, layer.base
        mass = adapted[PATTERN][:, n_p:, :n_p].sum(-1)  # [H, n]
        bias = adapted[Z_HOOK][n_p:] - (1 - mass).T[..., None] * base[Z_HOOK]
        values = jnp.repeat(adapted[V][:n_p], group, axis=1)  # [n_p, H, d_head]
        out.append((bias, values))
    return out


def _cone_residual(bias, values):
    """max over heads of |b - c U| and of max(0, -c) with c the least-squares coefficients."""
    if values.shape[0] == 0:
        return jnp.max(jnp.abs(bias))

    def one_head(b, U):  # b [n, d_head], U [n_p, d_head]
        c = jnp.linalg.lstsq(U.T, b.T)[0].T  # [n, n_p]
        scale = jnp.maximum(jnp.max(jnp.abs(b)), 1.0)
        return jnp.maximum(jnp.max(jnp.abs(b - c @ U)) / scale, jnp.max(jnp.maximum(-c, 0.0)))

    return jnp.max(jax.vmap(one_head, in_axes=(1, 1))(bias, values))


def residuals(arch, trial):
    """[n_layers, 3]: cone residual, per-head rank
    tail, rank tail after W_O (over N_INPUTS inputs)."""
    n_p = n_virtual(trial.context)
    shifts = jnp.arange(N_INPUTS) * 3 + 1

    def per_input(shift):
        tokens = (trial.tokens + shift) % arch.d_vocab
        return _biases(arch, trial._replace(tokens=tokens))

    stacked = jax.vmap(per_input)(shifts)  # per layer: bias [K, n, H, dh], values [K, n_p, H, dh]
    out = []
    for (bias, values), block in zip(stacked, trial.adapted["blocks"], strict=False):
        cone = jnp.max(jax.vmap(_cone_residual)(bias, values))
        per_head = bias.reshape(-1, arch.n_heads, arch.d_head)  # [K n, H, dh]
        head_tail = jnp.max(jax.vmap(lambda b: relative_singular_tail(b, n_p), in_axes=1)(per_head))
        after_WO = jnp.einsum("mhd,hdo->mo", per_head, block["attn"]["W_O"])
        out.append(
            jnp.stack([cone, head_tail, relative_singular_tail(after_WO, arch.n_heads * n_p)])
        )
    return jnp.stack(out)


def check(arch, trial):
    return residuals(arch, trial).max()


def expect(arch, method):
    if method.changes_weights:
        return (
            "fails",
            f"{method.name} changes the weights: no prefix, the change spans more than 0 dims",
        )
    if method.name in ("hard_prompt", "soft_prompt") and not arch.causal and arch.n_layers > 1:
        return "fails", (
            "bidirectional: a prompt's deeper virtual states depend on the content, so over "
            "many inputs the biases span more than n_p dimensions (per input they do not)"
        )
    return "holds", "docs/theory.md §3.4"


MEASURES = """\
Over several inputs (the trial's content shifted through the vocabulary), every layer: the
measured bias b_i = t^pt_i - (1 - m_i) t_i of every head is a non-negative combination of the
prefix values (least squares; residual: the relative fit error and the most negative
coefficient), and the singular values of the stacked biases beyond n_p (per head) and H n_p
(after W_O) vanish (relative to the largest)."""

THEOREM = Theorem(
    id="bias_span",
    statement="With n_p prefix positions the bias lies in the cone of {W_V s_p}: <= n_p dims per "
    "head, <= H n_p after W_O (measured over many inputs).",
    section="§3.4",
    assumptions=(
        "softmax attention",
        "content at the same positions with and without the prefix",
        "prefix values linearly independent (n_p <= d_head) for the cone coefficients to be unique",
        "the virtual states do not depend on the content (see expectation for bidirectional "
        "prompts)",
        "the bound is informative only when n_p < d_head and H n_p < d_model",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    default_run=core_architecture,
    methods=("soft_prompt", "prefix", "finetune_rank1_WQ"),
    expect=expect,
    controls=(
        Control(
            "rank-1 W_Q update",
            "no prefix: the change fine-tuning makes lies in no cone of n_p = 0 values",
            "paper",
            "finetune_rank1_WQ",
        ),
        Control(
            "bidirectional soft prompt",
            "in an encoder a soft prompt's deeper states depend on the content, so over many "
            "inputs its biases span more than n_p dimensions",
            "bert",
            "soft_prompt",
        ),
    ),
    coq=CoqProof(
        names=(
            "BiasSpan.bias_cone",
            "BiasSpan.bias_direction",
            "BiasSpan.bias_span_head",
            "BiasSpan.bias_span_heads",
        ),
        general_in=(
            "every n_p, H, value dimension d_v, model dimension, and n per input; 'at most n_p "
            "dimensions' is proved as: any n_p + 1 biases of a head (any H n_p + 1 after W_O) are "
            "linearly dependent"
        ),
        gap=(
            "The virtual values are the same for every input, as for a prefix or KV-prefix and "
            "for prompts in causal models (Layer.soft_prefix_universal_causal); a bidirectional "
            "encoder's prompt states depend on the content, where the numeric check expects the "
            "bound to fail and nothing is claimed."
        ),
    ),
)
